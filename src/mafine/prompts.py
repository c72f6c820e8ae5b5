"""Default prompts. Each is a template; the config may replace any of them."""

QUESTION = (
    "Solve the following math problem. Reason step by step, keeping your reasoning to a short "
    "list of bullet points, then give your final answer as \\boxed{{answer}} at the end.\n\n"
    "Problem: {question}"
)

DEBATE_WITH_SUMMARY = (
    "Here is a summary of how other agents answered the same problem and why:\n\n{summary}\n\n"
    "Treat their reasoning as additional advice. Examine your own solution and theirs "
    "critically, step by step, and give your updated final answer as \\boxed{{answer}} at the end."
)

DEBATE_WITH_RESPONSES = (
    "Here are the solutions other agents gave to the same problem:\n\n{responses}\n\n"
    "Treat their reasoning as additional advice. Examine your own solution and theirs "
    "critically, step by step, and give your updated final answer as \\boxed{{answer}} at the end."
)

SUMMARIZE = (
    "Several agents answered the following math problem.\n\nProblem: {question}\n\n"
    "Their responses:\n\n{responses}\n\n"
    "Summarize the different final answers and the key reasoning behind each, briefly. "
    "Write each answer as \\boxed{{answer}}. Do not solve the problem yourself."
)


def render(template: str, **values: str) -> str:
    """Fill a template's named placeholders; `{{`/`}}` stand for literal braces."""
    return template.format(**values)
