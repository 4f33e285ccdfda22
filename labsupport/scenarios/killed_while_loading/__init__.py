"""Lab 288, killed while loading: the slow model server, its pods, their timelines."""
