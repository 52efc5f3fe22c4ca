"""The lessons' shared views: figures in the course's style with text summaries, and quizzes (every
lesson's quiz loads and is well formed; each lesson's own test derives its answer keys)."""
import pkgutil

import pytest

import kslib.viz.quizzes
from kslib.viz import Question, Quiz, bar, figure, quiz, summary


def test_a_figure_needs_a_title_and_axis_titles():
    with pytest.raises(ValueError, match="title"):
        figure("", "x", "y")
    fig = figure("Connections per pod", "pod", "connections")
    assert fig.layout.title.text == "Connections per pod" and fig.layout.xaxis.title.text == "pod"


def test_summary_lists_short_series_and_summarises_long_ones():
    fig = bar("Share per pod", "pod", "share", ["a", "b"], [0.25, 0.75], name="share")
    assert summary(fig) == "Figure: Share per pod. x: pod; y: share.\n- share: a: 0.25, b: 0.75."
    fig = figure("Latency", "Services", "µs")
    fig.add_scatter(x=list(range(100)), y=[(i - 40) ** 2 for i in range(100)], name="iptables")
    assert "100 points, x from 0 to 99; lowest y 0 at 40, highest 3,481 at 99" in summary(fig)


def test_questions_refuse_malformed_keys():
    with pytest.raises(ValueError, match="not one of its choices"):
        Question("2 + 2?", ("3", "4"), 2, "arithmetic")
    with pytest.raises(ValueError, match="distinct"):
        Question("2 + 2?", ("4", "4"), 0, "arithmetic")
    with pytest.raises(ValueError, match="why"):
        Question("2 + 2?", ("3", "4"), 1, " ")


def test_a_quiz_grades_and_prints():
    q = Quiz("Check", (Question("2 + 2?", ("3", "4"), 1, "arithmetic"),))
    assert q.check([1]) == [True] and q.check([None]) == [False]
    with pytest.raises(ValueError):
        q.check([])
    assert "1. 2 + 2?\n   a) 3\n   b) 4" in str(q)
    form = q.widget()
    form.children[2].value = "4"                     # pick the right answer, then press Check
    form.children[-2].click()
    assert "1 of 1" in form.children[-1].value and "right" in form.children[3].value


def test_every_lessons_quiz_loads():
    names = [m.name for m in pkgutil.iter_modules(kslib.viz.quizzes.__path__)]
    for name in names:
        q = quiz(int(name[1:]))
        assert isinstance(q, Quiz) and len(q.questions) >= 3, name
    with pytest.raises(ValueError, match="no quiz"):
        quiz(99)
