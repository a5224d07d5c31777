"""Generation: prompts → teacher → trace rows. ``run`` holds the exactly-once runner."""

from synth.generate.run import GenerateConfig, RunResult, agenerate, generate

__all__ = ["GenerateConfig", "RunResult", "agenerate", "generate"]
