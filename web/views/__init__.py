"""The website's blueprints, one per module: public pages (``public``), the race page
(``races``), tracks (``tracks``), accounts (``auth``), the racer's garage (``garage``),
organizer pages for leagues (``organize``) and for races (``organize_races``), and replays
(``replays``). Each module's blueprint is registered in :func:`web.create_app`."""
