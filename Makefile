# The CRM. `make run` serves the demo company; `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export FLASK_APP := app:create_app
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: install translations migrate demo run test lint bench bench-search extract-messages clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) translations

translations: $(STAMP)
	$(BIN)/pybabel compile --use-fuzzy -d app/translations

migrate: install
	$(BIN)/flask db upgrade

demo: migrate
	$(BIN)/flask crm demo

run: demo
	$(BIN)/flask crm serve --host $(HOST) --port $(PORT)

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

# The client benchmarks need PostgreSQL (DATABASE_URL or TEST_DATABASE_URL); without it they
# say so and are skipped.
bench: install
	$(BIN)/python -m bench.api_me
	$(BIN)/python -m bench.orgchart_board
	$(BIN)/python -m bench.mail_delivery
	$(BIN)/python -m bench.tasks_views
	$(BIN)/python -m bench.clients_import
	$(BIN)/python -m bench.clients_search

# PostgreSQL only: a million messages (DATABASE_URL must point at PostgreSQL).
bench-search: install
	$(BIN)/python -m bench.mail_search

extract-messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k lazy_pgettext:1c,2 -o app/translations/messages.pot .
	$(BIN)/pybabel update -i app/translations/messages.pot -d app/translations --no-fuzzy-matching

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
