"""The demo company's programmes, runs and tasks."""
