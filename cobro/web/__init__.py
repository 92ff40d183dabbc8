"""The web dashboard (Starlette + server-rendered Jinja2 pages, no external assets)."""
