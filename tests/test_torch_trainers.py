"""l2decay.torch inside the training loops users resume from checkpoints: Hugging Face's Trainer
and Lightning save the optimizer's state dict and load it back with torch.load(weights_only=True),
torch's default; a run with a rule (reg=) resumes bit-identical to the run it was saved from.
Models are built from configs: nothing is downloaded."""
import os
import warnings

import pytest

torch = pytest.importorskip("torch")

import l2decay.torch as lt  # noqa: E402
from l2decay import Decoupled  # noqa: E402


def test_hugging_face_trainer_resumes_a_run_with_a_rule_exactly(tmp_path):
    pytest.importorskip("accelerate")
    transformers = pytest.importorskip("transformers")
    g = torch.Generator().manual_seed(0)
    data = [{"input_ids": x, "labels": x} for x in torch.randint(0, 64, (32, 16), generator=g)]

    def model():
        torch.manual_seed(0)
        config = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=64, n_positions=16)
        return transformers.GPT2LMHeadModel(config)

    def train(out, net, resume=None):
        opt = lt.AdamW(net.parameters(), lr=1e-3, reg=Decoupled(0.1))
        args = transformers.TrainingArguments(str(out), max_steps=10, per_device_train_batch_size=4,
                                              save_strategy="steps", save_steps=5, report_to=[], use_cpu=True,
                                              seed=0, logging_strategy="no", dataloader_num_workers=0,
                                              disable_tqdm=True)
        trainer = transformers.Trainer(model=net, args=args, train_dataset=data, optimizers=(opt, None))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.train(resume_from_checkpoint=resume)
        return trainer

    straight = model()
    train(tmp_path / "straight", straight)
    resumed = model()
    trainer = train(tmp_path / "resumed", resumed, resume=str(tmp_path / "straight" / "checkpoint-5"))
    assert trainer.optimizer.param_groups[0]["reg"] == Decoupled(0.1)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_lightning_resumes_a_run_with_a_rule_exactly(tmp_path):
    L = pytest.importorskip("lightning")
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(64, 8, generator=g), torch.randn(64, 2, generator=g)

    class Net(L.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))

        def training_step(self, batch, i):
            xb, yb = batch
            return ((self.net(xb) - yb) ** 2).mean()

        def configure_optimizers(self):
            return lt.AdamW(self.parameters(), lr=1e-2, reg=Decoupled(0.1))

    def fit(out, net, ckpt=None):
        # (checkpoints at epoch ends: Lightning restarts a plain DataLoader's epoch on resume)
        saver = L.pytorch.callbacks.ModelCheckpoint(dirpath=str(out), every_n_train_steps=8, save_top_k=-1)
        trainer = L.Trainer(max_steps=16, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                            enable_model_summary=False, callbacks=[saver], deterministic=True)
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(net, loader, ckpt_path=ckpt)
        return trainer

    straight = Net()
    fit(tmp_path / "straight", straight)
    saved = os.path.join(tmp_path, "straight", "epoch=0-step=8.ckpt")
    assert torch.load(saved, weights_only=True)["optimizer_states"][0]["param_groups"][0]["reg"] == "Decoupled(0.1)"
    resumed = Net()
    trainer = fit(tmp_path / "resumed", resumed, ckpt=saved)
    assert trainer.optimizers[0].param_groups[0]["reg"] == Decoupled(0.1)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_the_bench_gpt2_is_hugging_faces():
    transformers = pytest.importorskip("transformers")
    from l2decay import bench
    config = transformers.GPT2Config(n_layer=6, n_embd=384, n_head=6, vocab_size=8192, n_positions=256,
                                     bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config)
    assert [tuple(p.shape) for p in model.parameters()] == bench.gpt2_shapes()
