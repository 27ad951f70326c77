# The two commands of the README are `make demo` and `make test`; everything else helps.
SHELL := /bin/bash
PY := .venv/bin/python
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export VIDGRAPH_ROOT ?= $(CURDIR)/vidgraph-data
export VIDGRAPH_LANDING ?= $(CURDIR)/landing

.PHONY: install install-test demo test dev clean

install:
	bash scripts/bootstrap.sh

install-test:
	EXTRAS=test bash scripts/bootstrap.sh

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME) && cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

# Install, write the sample videos into the landing folder, run the whole graph on them.
demo: install $(DAGSTER_HOME)/dagster.yaml
	.venv/bin/vidgraph samples $(VIDGRAPH_LANDING)
	.venv/bin/vidgraph run $(VIDGRAPH_LANDING) --settle-s 0  # the samples are complete: no need to wait for them to settle
	.venv/bin/vidgraph query "select video_id, count(*) as clips, count(*) filter (passed) as long_takes, round(sum(duration_s), 1) as seconds from long_takes group by 1 order by 1"
	.venv/bin/vidgraph query "select clip_id, vlm_model_id, left(caption, 60) as caption from frame_captions order by 1"
	.venv/bin/vidgraph query "select clip_id, audio_class, round(speech_share, 2) as speech, language, transcript from audio_captions order by 1"
	# The merged record of one clip, then its lineage from the landed file.
	CLIP=$$(.venv/bin/vidgraph query "select clip_id from merged_captions order by clip_id limit 1" --json | $(PY) -c 'import json, sys; print(json.load(sys.stdin)[0]["clip_id"])') && \
	.venv/bin/vidgraph query "select * from merged_captions where clip_id = '$$CLIP'" --json && \
	.venv/bin/vidgraph lineage $$CLIP
	.venv/bin/vidgraph release v1
	.venv/bin/vidgraph query "select release, split, count(*) as clips from benchmark_split group by 1, 2 order by 1, 2"
	ls $(VIDGRAPH_ROOT)/releases/v1 $(VIDGRAPH_ROOT)/releases/v1/plots

# Install with the test extras and run the whole suite.
test: install-test
	bash scripts/test.sh

# The Dagster UI on http://127.0.0.1:3000 (loopback only).
dev: install $(DAGSTER_HOME)/dagster.yaml
	.venv/bin/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

clean:
	rm -rf vidgraph-data .dagster_home landing
