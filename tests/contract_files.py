"""Where the wire contract (``shared/contract``) is: beside the checkout, as CI lays it out, or
at the workplace's shared folder."""

from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
_CANDIDATES = (_REPO.parent / "shared" / "contract", Path("/work/shared/contract"))

CONTRACT_DIR = next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])
