# idnode — common tasks. `make run` and `make test` are the two commands of the README.
.PHONY: run test gen check-gen lint bench venv clean

venv:
	@scripts/bootstrap.sh

run: venv
	.venv/bin/idnode serve

test:
	scripts/test.sh

gen: venv
	.venv/bin/python scripts/gen.py

check-gen: venv
	.venv/bin/python scripts/check_generated.py

lint: venv
	.venv/bin/ruff check .
	.venv/bin/mypy

bench: venv
	scripts/system-deps.sh --bench
	.venv/bin/python -m loadtest

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache idnode-data
