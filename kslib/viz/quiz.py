"""Knowledge checks: a lesson ends with a few multiple-choice questions. ``Quiz.widget()`` is the
ipywidgets form (pick, check, see why); ``Quiz.check()`` grades answers without widgets (tests and
screen readers use it, and ``str(quiz)`` prints the questions). Each lesson's questions live in
``kslib/viz/quizzes/l<NN>.py``; tests derive every answer key from the model where it is a fact
the model computes."""
from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    prompt: str
    choices: tuple[str, ...]
    answer: int               # index into choices
    why: str                  # shown after checking, right or wrong

    def __post_init__(self):
        if len(self.choices) < 2 or len(set(self.choices)) != len(self.choices):
            raise ValueError(f"question {self.prompt!r}: needs two or more distinct choices")
        if not 0 <= self.answer < len(self.choices):
            raise ValueError(f"question {self.prompt!r}: answer {self.answer} is not one of its choices")
        if not self.why.strip():
            raise ValueError(f"question {self.prompt!r}: say why the answer is right")


@dataclass(frozen=True)
class Quiz:
    title: str
    questions: tuple[Question, ...]

    def check(self, picks) -> list[bool]:
        """Grade a list of choice indices (None: unanswered)."""
        picks = list(picks)
        if len(picks) != len(self.questions):
            raise ValueError(f"check: {len(picks)} answers for {len(self.questions)} questions")
        return [p == q.answer for p, q in zip(picks, self.questions)]

    def __str__(self) -> str:
        out = [self.title]
        for i, q in enumerate(self.questions, 1):
            out.append(f"{i}. {q.prompt}")
            out += [f"   {chr(97 + j)}) {c}" for j, c in enumerate(q.choices)]
        return "\n".join(out)

    def widget(self):
        """The form: one set of radio buttons per question, a Check button, feedback with the why."""
        import ipywidgets as w
        radios = [w.RadioButtons(options=list(q.choices), value=None, layout=w.Layout(width="auto"))
                  for q in self.questions]
        feedback = [w.HTML() for _ in self.questions]
        button = w.Button(description="Check my answers", button_style="primary")
        score = w.HTML()

        def on_check(_):
            picks = [None if r.value is None else r.options.index(r.value) for r in radios]
            right = self.check(picks)
            for ok, pick, q, fb in zip(right, picks, self.questions, feedback):
                mark = "not answered" if pick is None else ("right" if ok else "not quite")
                fb.value = f"<b>{mark}</b>: {q.why}"
            score.value = f"<b>{sum(right)} of {len(right)}</b>"

        button.on_click(on_check)
        rows = [w.HTML(f"<h3>{self.title}</h3>")]
        for i, (q, r, fb) in enumerate(zip(self.questions, radios, feedback), 1):
            rows += [w.HTML(f"<b>{i}. {q.prompt}</b>"), r, fb]
        return w.VBox(rows + [button, score])


def quiz(lesson: int) -> Quiz:
    """The knowledge check of lesson ``lesson`` (kslib/viz/quizzes/l<NN>.py)."""
    try:
        module = importlib.import_module(f"kslib.viz.quizzes.l{int(lesson):02d}")
    except ModuleNotFoundError:
        raise ValueError(f"lesson: no quiz for lesson {lesson}") from None
    return module.QUIZ
