"""The main job's live system: the daemons as processes, what they report, the summary."""
