"""notebooks/explore.ipynb runs top to bottom on a results file, and is committed without outputs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.synthetic_results import write_results

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "explore.ipynb"


def test_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert any("parameters" in cell.metadata.get("tags", []) for cell in code)


def results_for_notebook(tmp_path: Path) -> Path:
    """KVQ_RESULTS when set (make test points it at the quick suite's file), else a synthetic file."""
    given = os.environ.get("KVQ_RESULTS")
    return Path(given) if given else write_results(tmp_path / "results.json")


@pytest.mark.slow  # a kernel start and seven plots: ~10-25 s on the 2-core box
def test_runs_top_to_bottom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = results_for_notebook(tmp_path)
    monkeypatch.setenv("KVQ_RESULTS", str(results))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)"))
    client = NotebookClient(
        nb, timeout=90, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) >= 7  # six report plots and the slice plot
    texts = "".join(out.get("text", "") for out in outputs)
    assert f"{len(set(_names(results)))} benchmarks" in texts
    assert str(results) in nb.cells[1].outputs[0]["data"]["text/plain"]
    assert nb.cells[-1].outputs[0]["text"].strip() == sys.prefix  # the kernel runs in this venv


def _names(results: Path) -> list[str]:
    from bench.results import load

    return list(load(results)["benchmark"])
