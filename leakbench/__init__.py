"""LeakBench: does a code LLM still leak after machine unlearning, and can it still write code?

Data flows one way: cases -> plant -> unlearn -> serve -> judge -> report. See README.md.
"""

__version__ = "0.1.0"
