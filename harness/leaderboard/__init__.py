"""The static leaderboard site, built from the results files alone (see :mod:`.build`)."""
