"""Where the course model files live, without importing a framework (the grader stays small)."""
import os
from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parent / "models"
SUPPORTED_MODES = ("torch", "tensorflow")


def check_mode(mode: str, model_framework: str | None = None) -> None:
    """Refuse unknown modes, and a mode that is not the framework of the model at hand."""
    if mode not in SUPPORTED_MODES:
        raise ValueError(f"unknown mode {mode!r}; use mode='torch' or mode='tensorflow'.")
    if model_framework is not None and mode != model_framework:
        raise TypeError(f"this is a {model_framework} model but mode={mode!r}: use mode={model_framework!r} "
                        f"(or load the model with mode={mode!r}).")


def model_path(mode: str = "torch") -> Path:
    """The course model file: ``ece662/models/<mode>.model`` (``$ECE662_MODEL_DIR`` overrides the folder)."""
    check_mode(mode)
    return Path(os.environ.get("ECE662_MODEL_DIR") or MODEL_DIR) / f"{mode}.model"
