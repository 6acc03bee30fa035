pytest_plugins = ["tests.fixtures.store", "tests.fixtures.kafka", "tests.fixtures.pipeline", "tests.fixtures.kube", "tests.fixtures.grpc", "tests.fixtures.seaweedfs"]
