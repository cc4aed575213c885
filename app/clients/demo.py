"""The demo company's clients, contacts, leads and deals."""
