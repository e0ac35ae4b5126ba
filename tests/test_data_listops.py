"""ListOps: generator values against an independent evaluator, limits, determinism, files."""

from __future__ import annotations

import collections
import os
import statistics

import numpy as np
import pytest

from elm_jax import data
from elm_jax.data.common import ChecksumError, DataCorruptError, DataNotFoundError
from elm_jax.data.listops import files as listops_files
from elm_jax.data.listops import synthetic as listops
from elm_jax.data.listops import tasks as listops_tasks

SMALL = dict(max_depth=6, max_args=5, min_length=10, max_length=120)


def _med(args):
    return int(statistics.median(args))  # even count: mean of the middle two, floored


PYTHON_NAMES = {"[MAX": "max", "[MIN": "min", "[MED": "_med", "[SM": "_sm"}


def evaluate_by_eval(text: str) -> int:
    """Independent evaluator: the expression rewritten as a Python call tree and eval'd."""
    pieces = []
    for token in text.split():
        if token in PYTHON_NAMES:
            pieces.append(PYTHON_NAMES[token] + "((")
        elif token == "]":
            pieces.append(")),")
        else:
            assert token.isdigit() and len(token) == 1, token
            pieces.append(token + ",")
    names = {"_med": _med, "_sm": lambda args: sum(args) % 10}
    return eval("(" + "".join(pieces) + ")", names)[0]


def nesting(text: str) -> int:
    depth = deepest = 0
    for token in text.split():
        if token.startswith("["):
            depth += 1
            deepest = max(deepest, depth)
        elif token == "]":
            depth -= 1
    assert depth == 0
    return deepest


def test_evaluator_agrees_on_hand_examples():
    assert evaluate_by_eval("[MAX 2 9 [MIN 4 7 ] 0 ]") == 9
    assert evaluate_by_eval("[MED 1 2 6 3 ]") == 2  # sorted 1 2 3 6: (2 + 3) // 2
    assert evaluate_by_eval("[SM 9 8 [MED 7 ] ]") == 4
    ids = listops.encode("[MED 1 2 6 3 ]")
    assert ids == [13, 2, 3, 7, 4, 15] and listops.decode(ids) == "[MED 1 2 6 3 ]"
    assert listops.apply_operator("[MED", [1, 2, 6, 3]) == 2
    assert listops.apply_operator("[MED", [0, 9]) == 4


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_generated_labels_equal_independent_evaluation(seed):
    params = listops.ListOpsParams(**SMALL, num_train=1500, num_validation=300, num_test=300,
                                   seed=seed)  # fmt: skip
    splits = listops.generate(params)
    checked = 0
    for split, arrays in splits.items():
        assert len(arrays["labels"]) == params.split_sizes[split]
        for tokens, length, label in zip(*(arrays[k] for k in listops_files.ARRAYS), strict=True):
            text = listops.decode(tokens[:length])
            assert evaluate_by_eval(text) == label
            assert len(text.split()) == length
            checked += 1
    assert checked == 2100


def test_lengths_depth_and_uniqueness_respect_the_limits():
    params = listops.ListOpsParams(**SMALL, num_train=2000, num_validation=200, num_test=200)
    splits = listops.generate(params)
    texts = []
    for arrays in splits.values():
        lengths = arrays["lengths"]
        assert lengths.min() > params.min_length and lengths.max() < params.max_length
        assert np.all(
            arrays["tokens"][np.arange(arrays["tokens"].shape[1]) >= lengths[:, None]] == 0
        )
        for tokens, length in zip(arrays["tokens"], lengths, strict=True):
            text = listops.decode(tokens[:length])
            assert nesting(text) <= params.max_depth - 1
            texts.append(text)
    assert len(set(texts)) == len(texts)  # no expression twice, so none in two splits
    depths = collections.Counter(nesting(t) for t in texts)
    assert max(depths) == params.max_depth - 1  # the deepest allowed nesting does occur


def test_grammar_frequencies_follow_the_published_draw():
    """No length filter: operators uniform, argument counts uniform 2..max_args, and a node
    above max_depth is an operator one time in four."""
    params = listops.ListOpsParams(max_depth=4, max_args=6, min_length=0, max_length=10**6,
                                   num_train=3000, num_validation=0, num_test=0)  # fmt: skip
    tokens = listops.generate(params)["train"]
    operators, arg_counts, children, operator_children = collections.Counter(), [], 0, 0
    for row, length in zip(tokens["tokens"], tokens["lengths"], strict=True):
        stack = []  # [argument count, depth] of each open operator
        for token in listops.decode(row[:length]).split():
            if stack and token != "]":
                stack[-1][0] += 1
                if stack[-1][1] + 1 < params.max_depth:
                    children += 1
                    operator_children += token.startswith("[")
            if token.startswith("["):
                operators[token] += 1
                stack.append([0, len(stack) + 1])
            elif token == "]":
                arg_counts.append(stack.pop()[0])
    assert abs(operator_children / children - 0.25) < 0.02
    total = sum(operators.values())
    assert all(abs(count / total - 0.25) < 0.03 for count in operators.values())
    counts = np.bincount(arg_counts, minlength=7)[2:] / len(arg_counts)
    assert np.allclose(counts, 0.2, atol=0.03)


def test_generation_is_deterministic_in_the_seed():
    params = listops.ListOpsParams(**SMALL, num_train=200, num_validation=20, num_test=20)
    first, again = listops.generate(params), listops.generate(params)
    other = listops.generate(listops.ListOpsParams(**SMALL, num_train=200, num_validation=20,
                                                   num_test=20, seed=1))  # fmt: skip
    for split in listops.SPLITS:
        for key in listops_files.ARRAYS:
            np.testing.assert_array_equal(first[split][key], again[split][key])
    assert not np.array_equal(first["train"]["labels"], other["train"]["labels"])


def test_bad_parameters_name_the_field():
    with pytest.raises(ValueError, match=r"max_args=1; valid: an integer >= 2"):
        listops.ListOpsParams(max_args=1)
    with pytest.raises(ValueError, match=r"min_length=10 leaves no length"):
        listops.ListOpsParams(min_length=10, max_length=11)
    with pytest.raises(RuntimeError, match="kept 0 of 5"):
        listops.generate(listops.ListOpsParams(max_depth=2, max_args=2, min_length=5,
                                               max_length=50, num_train=5, num_validation=0,
                                               num_test=0), max_draws=200)  # fmt: skip
    with pytest.raises(ValueError, match="unknown ListOps token 'X'"):
        listops.encode("[MAX 1 X")


def test_cached_default_round_trips_and_is_byte_identical(tmp_path):
    params = listops.ListOpsParams(**SMALL, num_train=300, num_validation=50, num_test=50)
    folder = listops_files.build_default(str(tmp_path / "a"), params)
    again = listops_files.build_default(str(tmp_path / "b"), params)
    splits, manifest, records = listops_files.read_default(folder)
    generated = listops.generate(params)
    for split in listops.SPLITS:
        for key in listops_files.ARRAYS:
            np.testing.assert_array_equal(splits[split][key], generated[split][key])
        counts = np.bincount(generated[split]["labels"], minlength=10).tolist()
        assert manifest["statistics"][split]["label_counts"] == counts
        assert manifest["files"][split]["sha256"] == listops_files.sha256_file(
            os.path.join(again, split + ".npz")
        )
    assert manifest["params"]["seed"] == 0 and manifest["generator_version"] == 1
    assert [r["sha256"] for r in records] == [
        manifest["files"][s]["sha256"] for s in listops.SPLITS
    ]


def test_damaged_default_files_raise_named_errors(tmp_path):
    params = listops.ListOpsParams(**SMALL, num_train=50, num_validation=10, num_test=10)
    folder = listops_files.build_default(str(tmp_path), params)
    path = os.path.join(folder, "test.npz")
    data = open(path, "rb").read()
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])
    with pytest.raises(ChecksumError, match="test.npz: sha256"):
        listops_files.read_default(folder)
    with pytest.raises(DataCorruptError, match="not a readable ListOps split file"):
        listops_files.read_npz(path)
    bad = {"tokens": np.array([[11, 1, 16]], np.uint8), "lengths": np.array([3], np.int32),
           "labels": np.array([0], np.int32)}  # fmt: skip
    listops_files.write_npz(path, bad)
    with pytest.raises(DataCorruptError, match="token id 16; valid 0..15"):
        listops_files.read_npz(path)


def lra_source(tree) -> str:
    """LRA's Source text of a tree (digit, or (operator, [subtrees])), parentheses included."""
    if isinstance(tree, int):
        return str(tree)
    operator, args = tree
    text = "( " + operator + " " + lra_source(args[0]) + " )"
    for arg in args[1:]:
        text = "( " + text + " " + lra_source(arg) + " )"
    return "( " + text + " ] )"


def write_tsv(folder, name, rows, header="Source\tTarget"):
    """LRA's writer: csv with a tab delimiter, so lines end in CRLF."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "w", newline="") as handle:
        handle.write(header + "\r\n" + "".join(f"{s}\t{t}\r\n" for s, t in rows))


def test_lra_tsv_files_are_read_without_parentheses(tmp_path):
    tree = ("[MAX", [2, 9, ("[MIN", [4, 7]), 0])
    assert lra_source(("[MAX", [2, 9])) == "( ( ( [MAX 2 ) 9 ) ] )"
    rows = [(lra_source(tree), 9), (lra_source(("[SM", [9, 8, ("[MED", [7, 2])])), 1)]
    folder = tmp_path / "lra_release" / "listops-1000"
    for name in listops_files.LRA_FILES.values():
        write_tsv(folder, name, rows)
    paths = listops_files.find_lra_files(str(tmp_path))
    assert paths["validation"].endswith(os.path.join("listops-1000", "basic_val.tsv"))
    arrays = listops_files.read_lra_tsv(paths["train"])
    assert listops.decode(arrays["tokens"][0]) == "[MAX 2 9 [MIN 4 7 ] 0 ]"
    assert listops.decode(arrays["tokens"][1]) == "[SM 9 8 [MED 7 2 ] ]"
    assert arrays["lengths"].tolist() == [9, 8] and arrays["labels"].tolist() == [9, 1]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("( ( [MAX 2 ) 9 )\t9", "Source does not parse: the expression is empty or not closed"),
        ("( ( ( [MAX 2 ) 9 ) ] )\t12", "Target 12; valid 0..9"),
        ("( ( ( [MAX 2 ) 9 ) ] )\t3", "Source evaluates to 9, Target is 3"),
        ("( ( ( [MAX 2 ) 9 ) ] )\tnine", "Target 'nine' is not an integer"),
        ("( ( ( [MAX 2 ) Q ) ] )\t9", "unknown token 'Q'"),
        ("( ( ( [MAX 2 ) 9 ) ] ) 4\t9", "token '4' after the complete expression"),
    ],
)
def test_bad_lra_lines_raise_data_corrupt_error_naming_the_line(tmp_path, line, message):
    path = tmp_path / "basic_train.tsv"
    path.write_text("Source\tTarget\n( ( ( [MIN 2 ) 9 ) ] )\t2\n" + line + "\n")
    with pytest.raises(
        DataCorruptError, match=r"basic_train.tsv:3: .*" + message.replace("(", r"\(")
    ):
        listops_files.read_lra_tsv(str(path))


def test_missing_lra_files_raise_data_not_found(tmp_path):
    with pytest.raises(DataNotFoundError, match="ListOps .LRA. not found"):
        listops_files.find_lra_files(str(tmp_path))
    write_tsv(tmp_path, "basic_train.tsv", [("( ( ( [MAX 2 ) 9 ) ] )", 9)])
    with pytest.raises(DataNotFoundError, match="basic_val.tsv"):
        listops_files.find_lra_files(str(tmp_path))
    write_tsv(tmp_path / "h", "basic_train.tsv", [], header="Src\tTgt")
    with pytest.raises(DataCorruptError, match="header"):
        listops_files.read_lra_tsv(str(tmp_path / "h" / "basic_train.tsv"))


@pytest.fixture
def small_default(monkeypatch):
    params = listops.ListOpsParams(**SMALL, num_train=200, num_validation=40, num_test=40)
    monkeypatch.setattr(listops_tasks, "DEFAULT_PARAMS", params)
    return params


def test_listops_default_is_front_padded_one_hot_ending_on_the_closing_bracket(
    tmp_path, small_default
):
    ds = data.load("listops_default", data_dir=str(tmp_path))
    assert ds.info["source"] == "listops-default" and ds.info["seq_len"] == 119
    assert ds.info["input_dim"] == 15 == data.static_info("listops_default")["input_dim"]
    assert ds.info["truncated"] == {"train": 0, "validation": 0, "test": 0}
    generated = listops.generate(small_default)["validation"]
    batch = next(ds.eval_batches("validation", 8))
    for row in range(8):
        length = generated["lengths"][row]
        onehot = batch["inputs"][row]
        assert np.all(onehot[: 119 - length] == 0)  # front padding encodes as zeros
        assert np.all(onehot[119 - length :].sum(axis=1) == 1)
        ids = onehot[119 - length :].argmax(axis=1) + 1
        assert listops.decode(ids) == listops.decode(generated["tokens"][row])
        assert onehot[-1, listops.END_ID - 1] == 1  # the classifier's last step reads "]"
        assert batch["labels"][row] == evaluate_by_eval(listops.decode(ids))
    prior = np.bincount(generated["labels"], minlength=10) / 40
    assert ds.input_blind("validation")["metric"] == pytest.approx(prior.max())


def test_short_seq_len_keeps_the_first_tokens_and_counts_the_cut(tmp_path, small_default):
    splits = listops.generate(small_default)
    longest = max(int(arrays["lengths"].max()) for arrays in splits.values())
    with pytest.warns(UserWarning, match=f"seq_len=30 cuts .* seq_len={longest} keeps them whole"):
        ds = data.load("listops_default", data_dir=str(tmp_path), seq_len=30)
    generated = splits["test"]
    assert ds.info["truncated"]["test"] == int((generated["lengths"] > 30).sum()) > 0
    row = int(np.argmax(generated["lengths"] > 30))
    ids = ds.encode("test", np.array([row]))[0].argmax(axis=1) + 1
    np.testing.assert_array_equal(ids, generated["tokens"][row, :30])
    with pytest.raises(ValueError, match="seq_len must be a positive integer, got 0"):
        data.load("listops_default", data_dir=str(tmp_path), seq_len=0)


def test_listops_reads_the_lra_files_of_the_named_directory(tmp_path):
    rows = [(lra_source(("[MAX", [2, 9, ("[MIN", [4, 7]), 0])), 9),
            (lra_source(("[SM", [9, 8])), 7), (lra_source(("[MED", [1, 3])), 2)]  # fmt: skip
    for name in listops_files.LRA_FILES.values():
        write_tsv(tmp_path, name, rows)
    ds = data.load("listops", data_dir=str(tmp_path), seq_len=12)
    assert ds.info["source"] == "listops-lra" and ds.num_examples("validation") == 3
    assert [f["path"] for f in ds.info["files"]][1].endswith("basic_val.tsv")
    x = ds.encode("train", np.arange(3))
    assert x.shape == (3, 12, 15) and np.all(x[1, :8] == 0) and x[1, 8:].sum() == 4
    assert ds.labels("test").tolist() == [9, 7, 2]
    with pytest.raises(DataNotFoundError, match="no data directory named"):
        listops_tasks.load_listops("listops", None)
    with pytest.raises(DataNotFoundError, match="not found"):
        data.load("listops", data_dir=str(tmp_path / "empty"))


def test_listops_config_fits_the_listops_datasets():
    from elm_jax.config_check import check_config
    from elm_jax.configs import listops as listops_config

    checked = check_config(listops_config.get_config())
    assert (checked.model.input_dim, checked.model.num_classes) == (15, 10)
    assert checked.cfg.data.seq_len == listops_tasks.DEFAULT_PARAMS.max_length - 1
    real = listops_config.get_config("seq_len=1999")
    real.data.name = "listops"
    assert check_config(real).cfg.data.seq_len == 1999


def as_tree(text: str):
    """Expression text to (operator, [subtrees]) / digit, for lra_source."""
    stack = [["root", []]]
    for token in text.split():
        if token.startswith("["):
            stack.append([token, []])
        elif token == "]":
            operator, args = stack.pop()
            stack[-1][1].append((operator, args))
        else:
            stack[-1][1].append(int(token))
    return stack[0][1][0]


def test_generated_expressions_written_in_lra_format_read_back_unchanged(tmp_path):
    generated = listops.generate(
        listops.ListOpsParams(**SMALL, num_train=200, num_validation=0, num_test=0)
    )["train"]
    pairs = zip(generated["tokens"], generated["lengths"], strict=True)
    texts = [listops.decode(row[:n]) for row, n in pairs]
    rows = [(lra_source(as_tree(t)), y) for t, y in zip(texts, generated["labels"], strict=True)]
    write_tsv(tmp_path, "basic_train.tsv", rows)
    arrays = listops_files.read_lra_tsv(str(tmp_path / "basic_train.tsv"))
    for key in listops_files.ARRAYS:
        np.testing.assert_array_equal(arrays[key], generated[key])
