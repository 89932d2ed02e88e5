"""Wire-faithful fakes of outside services (FAL.AI) for tests and benchmarks."""
