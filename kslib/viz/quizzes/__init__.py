"""One module per lesson, ``l<NN>.py``, each defining ``QUIZ`` (a kslib.viz.quiz.Quiz)."""
