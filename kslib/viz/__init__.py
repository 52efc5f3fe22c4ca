"""Views for the lessons: text tables as kubectl prints them, plotly figures in the course's style
with their text summaries, and knowledge-check quizzes. Views read model state; they hold no logic
of their own."""
from .figures import MODE_COLORS, PALETTE, bar, figure, summary
from .quiz import Question, Quiz, quiz
from .tables import get_endpointslices, get_pods, get_services
from .trace import lanes, marks, nat_points, trace_figure

__all__ = ["MODE_COLORS", "PALETTE", "Question", "Quiz", "bar", "figure", "get_endpointslices", "get_pods",
           "get_services", "lanes", "marks", "nat_points", "quiz", "summary", "trace_figure"]
