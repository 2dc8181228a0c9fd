"""The league's rules: accounts, leagues and their races, members, submissions, the job state
machine, seasons and standings, head-to-head ratings and knockouts, the leaderboard, name cleaning.

Functions take a session and never commit; the caller owns the transaction.
"""
