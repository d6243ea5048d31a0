import pytest

from aigc_chat.errors import ParamError
from aigc_chat.params import GenerationParams, coerce_param


def test_defaults_are_valid():
    assert GenerationParams().validate() == GenerationParams()


@pytest.mark.parametrize(
    "name,value,message",
    [
        ("temperature", -0.1, "temperature: must be between 0.0 and 2.0"),
        ("temperature", "hot", "temperature: expected a number"),
        ("top_p", 1.5, "top_p: must be between"),
        ("top_k", 2.5, "top_k: expected an integer"),
        ("max_tokens", 0, "max_tokens: must be between 1"),
        ("seed", -1, "seed: must be between 0"),
        ("stop", [""], "stop: a stop sequence cannot be empty"),
        ("stop", 3, "stop: must be a list of strings"),
        ("temperature", float("nan"), "finite"),
        ("nonsense", 1, "unknown generation parameter"),
    ],
)
def test_bad_values_are_refused_with_the_reason(name, value, message):
    with pytest.raises(ParamError, match=message.replace("(", r"\(")):
        coerce_param(name, value)


def test_strings_are_parsed_for_flags_and_slash_commands():
    p = GenerationParams().with_updates(temperature="0.2", top_k="7", stop=["a", "a", "b"])
    assert (p.temperature, p.top_k, p.stop) == (0.2, 7, ("a", "b"))


