"""Prompts of code problems: LiveCodeBench's code-generation prompt.

The text is LiveCodeBench's generic template (``lcb_runner/prompts/code_generation.py``:
its system message, "### Question:", "### Format:" with the starter code or the stdin
instruction, "### Answer: (use the provided format with backticks)"), sent as one user
message: R1-distilled models are prompted without a system turn, so the system text
opens the user message. The code reward takes the last ```python block of the answer.
"""

from __future__ import annotations

LCB_SYSTEM = (
    "You are an expert Python programmer. You will be given a question (problem "
    "specification) and will generate a correct Python program that matches the "
    "specification and passes all tests."
)
WITH_STARTER = (
    "You will use the following starter code to write the solution to the problem and "
    "enclose your code within delimiters."
)
WITHOUT_STARTER = (
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not "
    "directly test on the sample inputs). Enclose your code within delimiters as follows. "
    "Ensure that when the python program runs, it reads the inputs, runs the algorithm "
    "and writes output to STDOUT."
)


def code_prompt(question: str, starter_code: str | None = None) -> str:
    """The user message of a code problem.

    Args:
        question: the problem statement.
        starter_code: the signature to complete (functional problems), or None for a
            stdin/stdout program.

    Example:
        >>> code_prompt("Print 42.").splitlines()[2]
        '### Question:'
    """
    text = f"{LCB_SYSTEM}\n\n### Question:\n{question.strip()}\n\n"
    if starter_code:
        text += f"### Format: {WITH_STARTER}\n```python\n{starter_code.rstrip()}\n```\n\n"
    else:
        text += f"### Format: {WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```\n\n"
    return text + "### Answer: (use the provided format with backticks)\n"
