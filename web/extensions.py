"""Flask extensions, created unbound here and bound to the app in :func:`web.create_app`."""

from __future__ import annotations

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from league.db import Base

# The league's own declarative base: the web app, the scheduler and the workers share one set
# of models and one MetaData (with its naming convention), which Flask-Migrate compares.
db = SQLAlchemy(model_class=Base)
migrate = Migrate()
