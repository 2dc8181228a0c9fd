"""The read side that pages and the API use: what a viewer may see and list, the garage, replays,
and the per-process caches of leaderboards and standings.
"""
