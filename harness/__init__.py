"""lossboard: a benchmark harness and static leaderboard for how dense retrievers are trained."""

__version__ = "0.1.0"
