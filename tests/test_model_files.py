"""A3 model files (given code): what ``save`` writes, what ``load`` accepts and refuses."""

import pytest
import torch

from A3_fc_cnn.model_files import SAVE_FORMAT, load_model, loaded_params, save_model
from helpers.train import atomic_save

GIVEN = pytest.mark.grade("given code: model files", points=0)


@GIVEN
def test_a_saved_model_loads_back_in_a_new_folder(tmp_path):
    params = {"W1": torch.arange(6.0).reshape(2, 3), "b1": torch.zeros(3, dtype=torch.float64)}
    path = tmp_path / "new" / "folder" / "model.pt"
    save_model(path, {"format": SAVE_FORMAT, "model": "TwoLayerNet", "reg": 0.5, "params": params})
    raw = torch.load(path, weights_only=True)  # plain values and tensors only
    assert raw["model"] == "TwoLayerNet" and raw["reg"] == 0.5
    payload = load_model(path, "TwoLayerNet")
    assert torch.equal(payload["params"]["W1"], params["W1"])


@GIVEN
def test_loaded_params_keep_or_change_the_dtype():
    params = {"W1": torch.ones(2, 2), "b1": torch.zeros(2, dtype=torch.float64)}
    kept = loaded_params(params, None, "cpu")
    assert kept["W1"].dtype == torch.float32 and kept["b1"].dtype == torch.float64
    assert all(v.dtype == torch.float16 for v in loaded_params(params, torch.float16, "cpu").values())


@GIVEN
def test_another_models_file_or_format_is_refused(tmp_path):
    save_model(tmp_path / "fc.pt", {"format": SAVE_FORMAT, "model": "FullyConnectedNet", "params": {}})
    with pytest.raises(ValueError, match=r"does not hold a TwoLayerNet saved with TwoLayerNet.save "
                                         r"\(found 'FullyConnectedNet'\)"):
        load_model(tmp_path / "fc.pt", "TwoLayerNet")
    atomic_save({"model": "TwoLayerNet", "params": {}, "format": SAVE_FORMAT + 1}, tmp_path / "future.pt")
    with pytest.raises(ValueError, match=rf"save format {SAVE_FORMAT + 1}; this code reads format {SAVE_FORMAT}"):
        load_model(tmp_path / "future.pt", "TwoLayerNet")
    with pytest.raises(FileNotFoundError, match="no saved model"):
        load_model(tmp_path / "missing.pt", "TwoLayerNet")


@GIVEN
def test_only_plain_values_and_tensors_are_saved(tmp_path):
    with pytest.raises(TypeError, match=r"model file\[.x.\] is a object, which torch.load\(weights_only=True\)"):
        save_model(tmp_path / "bad.pt", {"format": SAVE_FORMAT, "model": "TwoLayerNet", "params": {}, "x": object()})
    assert not (tmp_path / "bad.pt").exists()
