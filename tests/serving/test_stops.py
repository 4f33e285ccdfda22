from labsupport.serving.model import Tokenizer
from labsupport.serving.requests import Request, SamplingParams
from labsupport.serving.stops import stop_check

TOK = Tokenizer()


def run(text: str, **params):
    params.setdefault("max_tokens", 50)
    req = Request("r", [1], SamplingParams(**params))
    shown, end = "", (None, None)
    for t in text.encode():
        req.output_ids.append(t)
        reason, stop_reason, delta = stop_check(req, t, TOK)
        shown += delta
        if reason:
            end = (reason, stop_reason)
            break
    return shown, end, len(req.output_ids)


def test_length():
    assert run("abcdef", max_tokens=3) == ("abc", ("length", None), 3)


def test_stop_strings_cut_the_text_and_hold_back_a_possible_start():
    assert run("hello world", stop=("o w",)) == ("hell", ("stop", "o w"), 7)
    assert run("hello world", stop=("o w",), include_stop_str_in_output=True)[0] == "hello w"
    shown, end, _ = run("abcabc", stop=("zz",), max_tokens=6)
    assert shown == "abcabc" and end == ("length", None)  # held back, released at the end


def test_stop_token_ids_end_without_their_text():
    assert run("abc", stop_token_ids=(ord("b"),)) == ("a", ("stop", ord("b")), 2)
    assert run("abc", stop_token_ids=(ord("b"),), include_stop_str_in_output=True)[0] == "ab"


def test_nothing_stops_before_min_tokens():
    assert run("bab", stop_token_ids=(ord("b"),), min_tokens=1)[1:] == (("stop", 98), 3)
    assert run("xyxy", stop=("x",), min_tokens=2)[0] == "xy"
