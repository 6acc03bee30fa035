"""Generate the gRPC API's Python modules from the contract, proto/event.proto.

    python scripts/grpc_codegen.py           # write api/grpc/event_pb2{.py,.pyi,_grpc.py}
    python scripts/grpc_codegen.py --check   # fail when they differ from what the .proto gives

The generated modules are committed (the images need no protoc); tests/unit/test_grpc_codegen.py
runs the check, so a .proto edit without a regeneration fails `make test`. protoc writes a
top-level `import event_pb2` into the stubs; it is rewritten to the package's import.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO = ROOT / "proto"
OUT = ROOT / "api" / "grpc"
FILES = ("event_pb2.py", "event_pb2.pyi", "event_pb2_grpc.py")
PACKAGE = "streamtrack.api.grpc"


def generate() -> dict[str, str]:
    """File name -> text, as protoc (grpcio-tools' bundled one) writes them."""
    with tempfile.TemporaryDirectory() as tmp:
        include = str(Path(protoc.__file__).parent / "_proto")  # google/protobuf/*.proto
        code = protoc.main([
            "grpc_tools.protoc", f"-I{PROTO}", f"-I{include}",
            f"--python_out={tmp}", f"--pyi_out={tmp}", f"--grpc_python_out={tmp}", str(PROTO / "event.proto"),
        ])
        if code != 0:
            raise SystemExit(f"protoc failed on {PROTO / 'event.proto'} (exit {code})")
        texts = {name: (Path(tmp) / name).read_text() for name in FILES}
    texts["event_pb2_grpc.py"] = texts["event_pb2_grpc.py"].replace(
        "import event_pb2 as event__pb2", f"from {PACKAGE} import event_pb2 as event__pb2"
    )
    return texts


def main(argv: list[str]) -> int:
    texts = generate()
    if argv == ["--check"]:
        stale = [name for name, text in texts.items() if not (OUT / name).is_file() or (OUT / name).read_text() != text]
        if stale:
            print(f"stale (run scripts/grpc_codegen.py): {', '.join(stale)}", file=sys.stderr)
            return 1
        return 0
    for name, text in texts.items():
        (OUT / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
