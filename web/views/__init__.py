"""The website's blueprints, one module per area: public pages, accounts, the racer's garage,
organizer pages and replays."""
