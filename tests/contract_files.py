"""Where the wire contract's input schemas are: ``docs/contract/``, the producers' files copied
into the repository byte for byte (``docs/contract.md`` says what they fix). They are never
edited here: ``schemas/`` must stay readable for records written with exactly these."""

from pathlib import Path

CONTRACT_DIR = Path(__file__).resolve().parents[1] / "docs" / "contract"
