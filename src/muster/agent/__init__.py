"""The agent: local services and checks, their runners, and anti-entropy to the catalog."""
