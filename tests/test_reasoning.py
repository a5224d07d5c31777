import pytest

from synth.teachers.reasoning import join_reasoning, split_think


@pytest.mark.parametrize("text, answer, reasoning", [
    ("<think>plan</think>The answer is 4.", "The answer is 4.", "plan"),
    ("  \n<think>\nplan\n</think>\n\nAnswer", "Answer", "plan"),
    ("plan only closes</think>Answer", "Answer", "plan only closes"),  # R1 template opens it
    ("<think>cut off by max_tokens", "", "cut off by max_tokens"),
    ("No reasoning here.", "No reasoning here.", None),
    ("<think></think>Answer", "Answer", None),
    ("", "", None),
    (None, None, None),
    ("Use <think> tags like <think>this</think> in prose", "Use <think> tags like <think>this</think> in prose", None),
])
def test_split_think(text, answer, reasoning):
    assert split_think(text) == (answer, reasoning)


def test_join_reasoning_skips_empty():
    assert join_reasoning(None, "") is None
    assert join_reasoning("a", None, "b") == "a\n\nb"
