"""The website and the JSON API (built on the league)."""
