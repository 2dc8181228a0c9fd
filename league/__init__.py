"""The league: domain, persistence, jobs and the scheduler (built on the evaluator)."""
