"""Regenerate ``datapath_pb2.py`` and its stub from ``datapath.proto`` with grpcio-tools' protoc (a dev dependency).

The generated module is committed, so installing the package needs only the ``protobuf`` runtime;
``tests/test_kvconnect_proto.py`` fails when the committed module differs from what this writes.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = "datapath.proto"
OUTPUTS = ("datapath_pb2.py", "datapath_pb2.pyi")


def generate(out_dir: Path) -> list[Path]:
    """Run protoc on datapath.proto, writing the module and its stub into ``out_dir``."""
    from grpc_tools import protoc

    status = protoc.main(["protoc", f"-I{HERE}", f"--python_out={out_dir}", f"--pyi_out={out_dir}", str(HERE / PROTO)])
    if status != 0:
        raise RuntimeError(f"protoc failed with status {status} on {HERE / PROTO}")
    return [out_dir / name for name in OUTPUTS]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        for path in generate(Path(tmp)):
            (HERE / path.name).write_bytes(path.read_bytes())
            print(f"wrote {HERE / path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
