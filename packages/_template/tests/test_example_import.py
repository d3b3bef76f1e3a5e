import needle_example


def test_version_is_a_release_string():
    assert needle_example.__version__.count(".") == 2
