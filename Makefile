# The README's commands; each installs what it needs (uv, then the locked environment).
.PHONY: demo test lint
demo:
	python3 run.py demo
test:
	python3 run.py test
lint:
	uv run --frozen ruff check packages tests benchmarks
	uv run --frozen mypy
