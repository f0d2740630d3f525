"""salbench: benchmark saliency methods for PyTorch image classifiers."""

__version__ = "0.1.0"


def benchmark(model, data, **options):
    """Benchmark every applicable saliency method on your ``model`` with your images ``data``
    (and ``masks=``): :func:`salbench.studies.benchmark.run_benchmark`, which documents every
    option; returns the run's ``results`` table.

    Example: ``salbench.benchmark("model.pt", "images/", masks="masks/", preset="fast")``.
    """
    # Imported here: ``import salbench.data`` runs this module and must not load every stage.
    from salbench.studies.benchmark import run_benchmark

    return run_benchmark(model, data, **options)
