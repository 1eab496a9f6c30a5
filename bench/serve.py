"""`python -m bench.serve APP PORT [--probe]`: one measured server, started exactly as `aidtrail serve` does.

APP is a service (pledge, warehouse) built by its bootstrap `create()`, `projection` (bench.projection_app, the
warehouse's stand-in) or `baseline` (bench.baseline_app).
Settings come from the AIDTRAIL_* environment, as in production. Every app gets the read-only probe route (are
the consumers assigned yet?); `--probe` also installs the timing hooks of the latency row.
"""

from __future__ import annotations

import argparse
import importlib
import os

import uvicorn
from fastapi import FastAPI

from bench import probes
from shared.settings import Settings


def build(app_name: str, probe: bool) -> FastAPI:
    if app_name == "baseline":
        from bench.baseline_app import create

        return create(Settings())
    os.environ["AIDTRAIL_SERVICE"] = app_name
    if probe:
        probes.install_commit_probe()
        probes.install_apply_probe()
    module_name = "bench.projection_app" if app_name == "projection" else f"services.{app_name}.bootstrap"
    app: FastAPI = importlib.import_module(module_name).create(Settings())
    probes.add_probe_route(app)
    return app


def main() -> None:
    if os.environ.get("BENCH_EXPERIMENT_FILE"):
        import runpy

        runpy.run_path(os.environ["BENCH_EXPERIMENT_FILE"])
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("app", choices=["pledge", "warehouse", "projection", "baseline"])
    parser.add_argument("port", type=int)
    parser.add_argument("--probe", action="store_true", help="install the latency timing hooks")
    args = parser.parse_args()
    uvicorn.run(build(args.app, args.probe), host="127.0.0.1", port=args.port, log_config=None)


if __name__ == "__main__":
    main()
