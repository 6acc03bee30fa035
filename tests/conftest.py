pytest_plugins = ["tests.fixtures.store", "tests.fixtures.pipeline"]
