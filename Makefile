# The two commands of the README. Each sets everything up first (idempotent).
.PHONY: app test bench setup

app:  ## set up, then open the studio on the built-in example dataset
	bash scripts/setup.sh
	.venv/bin/kanstudio serve --show

test:  ## set up (incl. Debian's chromium), then run the whole test suite, browser tests included
	bash scripts/setup.sh --test
	.venv/bin/python -m pytest -q -p no:cacheprovider

bench:  ## set up with pykan, then run every benchmark side by side
	bash scripts/setup.sh --bench
	for b in benchmarks/*.py; do echo "== $$b"; .venv/bin/python $$b || exit 1; done

setup:
	bash scripts/setup.sh --test
