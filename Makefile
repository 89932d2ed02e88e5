.PHONY: run test bench lint

run:
	python3 -m pip install -e ".[all]" && image2model serve

test:
	python3 -m pip install -e ".[all,dev]" && python3 -m pytest -q

lint:
	python3 -m ruff check . && python3 -m ruff format --check .

bench:
	python3 bench/submit.py; python3 bench/overhead.py; python3 bench/streams.py; python3 bench/upload_memory.py; \
	python3 bench/generator.py; python3 bench/generate_cli.py; python3 bench/fal.py; python3 bench/ui_latency.py; python3 bench/ui_history.py; \
	python3 bench/throughput.py; python3 bench/export.py; python3 bench/submit.py --backend redis; python3 bench/streams.py --backend redis; \
	python3 bench/throughput.py --backend redis; python3 bench/history.py; python3 bench/history.py --backend redis
