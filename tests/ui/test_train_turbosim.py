"""The Train page's Turbo-Sim form (validated through TurboSimConfig, the term weights in a
collapsed card) and its GAN-health curves (critics' W₁ estimates, gradient penalties, generator
terms), drawn from the keys of the epoch records, on a short Turbo-Sim run trained here."""
import time

import holoviews as hv
import panel as pn
import pytest

import otviz.ui.state as ui_state
from otviz.errors import ConfigError
from otviz.losses.turbosim import TERM_LABELS, TERMS
from otviz.train.turbosim import TurboSimConfig
from otviz.viz.curves import critic_label, gan_health_curves, gan_keys, generator_term_label, has_critics


def _legend(plot) -> list[str]:
    fig = hv.render(plot)
    return [item.label.value for item in fig.legend[0].items] if fig.legend else []


def test_the_form_builds_a_validated_turbosim_config():
    from otviz.ui.train_view import TurboSimSettings

    form = TurboSimSettings()
    assert (form.epochs, form.batch_size, form.n_critic, form.gp_weight, form.paired_fraction) == (60, 5000, 1, 10.0, 1.0)
    form.param.update(epochs=3, batch_size=1000, lr=2e-4, critic_lr=5e-4, n_critic=3, gp_weight=5.0,
                      paired_fraction=0.5, max_events=5000, device="cpu", seed=7, d_z_hat=0.0, l_x_hat=2.5,
                      sw_weight=12.5)
    cfg = form.to_config()
    assert type(cfg) is TurboSimConfig and cfg.train_data == "data/ttbar_train.nc"
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.critic_lr, cfg.n_critic, cfg.gp_weight, cfg.paired_fraction,
            cfg.max_events, cfg.device, cfg.seed) == (3, 1000, 2e-4, 5e-4, 3, 5.0, 0.5, 5000, "cpu", 7)
    assert cfg.weights.d_z_hat == 0.0 and cfg.weights.l_x_hat == 2.5 and len(cfg.weights.active()) == 7
    assert cfg.sw_weight == 12.5 and form.param["sw_weight"].bounds == TurboSimConfig.BOUNDS["sw_weight"]
    assert form.describe() == "Turbo-Sim tt̄, 3 epochs, 5000 events, 7 of 8 terms on + SW_z̃, SW_x̃"
    assert "+ marginal SW on E(x) and D(z) (weight 12.5)" in cfg.schedule_text()
    assert TurboSimSettings(max_events=0).to_config().max_events is None  # 0: all events
    # labels in words; the bounds are the config's
    assert form.param["n_critic"].label == "critic steps per generator step"
    assert form.param["lr"].label == "generator learning rate" and form.param["critic_lr"].label == "critic learning rate"
    assert form.param["d_x_tilde"].label == "D_x̃: critic on D(z) vs x" and form.param["d_x_tilde"].doc == TERM_LABELS["d_x_tilde"]
    assert form.param["paired_fraction"].bounds == TurboSimConfig.BOUNDS["paired_fraction"]
    with pytest.raises(ValueError):
        form.n_critic = 0
    # cross-field rules of TurboSimConfig, each naming its field
    with pytest.raises(ConfigError) as off:
        TurboSimSettings(sw_weight=0.0, **{t: 0.0 for t in TERMS}).to_config()
    assert off.value.path == "weights" and "switched off" in str(off.value)
    supervised_only = {t: 0.0 for t in TERMS if t not in ("l_z_tilde", "l_x_tilde")}
    with pytest.raises(ConfigError) as unpaired:
        TurboSimSettings(paired_fraction=0.0, sw_weight=0.0, **supervised_only).to_config()
    assert unpaired.value.path == "paired_fraction"


def test_the_train_page_offers_the_form_with_the_weights_in_a_collapsed_card(tmp_path, monkeypatch):
    from otviz.ui.state import ExplorerState
    from otviz.ui.train_view import TrainView, TurboSimSettings

    monkeypatch.setattr(ui_state, "RUNS", tmp_path / "runs")
    train = TrainView(ExplorerState())
    assert "Turbo-Sim tt̄" in train.mode.options and isinstance(train.settings_for("turbosim"), TurboSimSettings)
    train.mode.value = "Turbo-Sim tt̄"
    form = train._form(300)
    assert form[0].object == "### New Turbo-Sim tt̄ run"
    main = [w.name for w in form[1].layout]
    assert "critic steps per generator step" in main and generator_term_label("l_z_tilde") not in main
    card = form[2]
    assert isinstance(card, pn.Card) and card.collapsed and card.title.startswith("Loss-term weights")
    # short labels that fit the sidebar (the full text is the tooltip)
    assert [w.name for w in card[0].layout if w.name] == [*(generator_term_label(t) for t in TERMS),
                                                          "SW_z̃ and SW_x̃ (marginal sliced W²)"]
    assert all(len(w.name) <= 36 for w in card[0].layout if w.name)
    assert [train.settings.param[t].doc for t in TERMS] == [TERM_LABELS[t] for t in TERMS]
    assert all(w.width <= 280 for w in form[1].layout if getattr(w, "width", None))
    # a config the class refuses: said in the page, naming the field, and nothing started
    train.settings.param.update(sw_weight=0.0, **{t: 0.0 for t in TERMS})
    train._start()
    assert train.status.object.startswith("**Could not start:** ConfigError") and "weights" in train.status.object
    assert train.rundir is None


HISTORY = [{"epoch": e, "loss": 3.0 - e, "l_z_tilde": 1.0 / (e + 1), "d_z_tilde": -0.1 * e, "lr": 1e-3,
            "w_z_tilde": 0.5 - 0.1 * e, "gp_z_tilde": 0.2, "critic_z_tilde": 1.0,
            "w_x_hat": 0.3, "gp_x_hat": 0.1 * e, "critic_x_hat": 0.5, "seconds": 1.0} for e in range(3)]


def test_gan_health_curves_follow_the_keys_of_the_records():
    assert gan_keys(HISTORY) == {"critics": ["z_tilde", "x_hat"], "penalties": ["z_tilde", "x_hat"],
                                 "terms": ["l_z_tilde", "d_z_tilde"]}
    assert has_critics(HISTORY) and not has_critics([{"epoch": 0, "loss": 1.0, "sw_z": 0.1}])
    assert critic_label("z_tilde") == "z̃ critic (E(x) vs z)" and critic_label("x_hat") == "x̂ critic (D(E(x)) vs x)"
    assert generator_term_label("l_z_tilde") == "L_z̃: MSE(z, E(x)) on pairs"
    w, gp, terms = gan_health_curves(HISTORY)
    assert _legend(w) == ["z̃ critic (E(x) vs z)", "x̂ critic (D(E(x)) vs x)"]  # in words, one entry per critic
    assert _legend(gp) == _legend(w)
    assert _legend(terms) == ["L_z̃: MSE(z, E(x)) on pairs", "D_z̃: critic on E(x) vs z"]
    for plot, ylabel in ((w, "W₁ estimate"), (gp, "gradient penalty"),
                         (terms, "loss term (unweighted)")):
        fig = hv.render(plot)
        assert fig.xaxis.axis_label == "epoch" and fig.yaxis.axis_label == ylabel
        assert fig.legend[0] in fig.right  # beside the axes
    curve = [el for el in w if isinstance(el, hv.Curve)][0]
    assert list(curve.dimension_values(0)) == [1, 2, 3]  # epochs counted from 1
    assert list(curve.dimension_values(1)) == pytest.approx([0.5, 0.4, 0.3])
    assert all(_legend(p) == [] for p in gan_health_curves([]))  # nothing yet: empty axes
    # eight terms and two SW terms: the terms' plot grows so that its legend fits beside it
    many = [{**h, **{t: 0.1 for t in (*TERMS, "sw_z_tilde", "sw_x_tilde")}} for h in HISTORY]
    w, _, terms = gan_health_curves(many, height=260)
    assert len(_legend(terms)) == 10 and hv.render(w).height == 260 and hv.render(terms).height >= 10 * 28 + 40


@pytest.fixture
def app(tmp_path, monkeypatch):
    from otviz.ui.explorer import LatentExplorer

    monkeypatch.setattr(ui_state, "RUNS", tmp_path / "runs")
    monkeypatch.setenv("OTVIZ_POST_RUN_METRICS", "0")  # the KS products: tests/ui/test_browser_turbosim.py
    pn.extension("tabulator")
    return LatentExplorer()


def test_train_page_streams_the_gan_health_of_a_turbosim_run(app):
    train = app.train
    train.mode.value = "Turbo-Sim tt̄"
    train.settings.param.update(epochs=3, max_events=2000, batch_size=1000, device="cpu")
    assert not train.gan_box.visible
    train._start()
    deadline = time.time() + 120
    seen = []
    while time.time() < deadline:
        train.poll()  # what the periodic callback does in a served page
        seen.append(len(train._epochs))
        if not train.start_button.disabled:
            break
        time.sleep(0.1)
    assert "Done" in train.status.object, train.status.object
    assert len(train._epochs) == 3 and [e["epoch"] for e in train._epochs] == [0, 1, 2]
    assert train.gan_box.visible
    critics = ["z̃ critic (E(x) vs z)", "x̂ critic (D(E(x)) vs x)", "x̃ critic (D(z) vs x)", "ẑ critic (E(D(z)) vs z)"]
    assert sorted(_legend(train.gan_panes[0].object)) == sorted(critics)
    assert sorted(_legend(train.gan_panes[1].object)) == sorted(critics)
    assert _legend(train.gan_panes[2].object) == [generator_term_label(t) for t in (*TERMS, "sw_z_tilde", "sw_x_tilde")]  # + the preset's SW terms
    assert app.state.run_path == str(train.rundir)
    # attaching to the finished run again replays its epochs into the curves
    train.attach(train.rundir)
    assert len(train._epochs) == 3 and train.gan_box.visible
    # an OTUS history (no w_* keys) hides them
    train._epochs = [{"epoch": 0, "loss": 1.0}]
    train._show_gan()
    assert not train.gan_box.visible


def test_a_turbosim_run_chosen_in_the_run_menu_shows_its_gan_health(tmp_path, monkeypatch):
    """With no dashboard run attached, the run chosen in a run menu shows its history's GAN health;
    a run without critics (the shipped OTUS run) hides it."""
    import json

    from otviz.ui.state import ExplorerState
    from otviz.ui.train_view import TrainView, read_history

    monkeypatch.setattr(ui_state, "RUNS", tmp_path / "runs")
    run = tmp_path / "turbo"
    run.mkdir()
    (run / "history.json").write_text(json.dumps(HISTORY))
    assert read_history(run) == HISTORY and read_history(tmp_path) == []
    state = ExplorerState()
    train = TrainView(state)
    assert not train.gan_box.visible  # the shipped OTUS Z→ee run is selected at first
    train.show_selected(str(run))
    assert train.gan_box.visible and "the selected run `turbo`" in train.gan_title.object
    assert _legend(train.gan_panes[0].object) == ["z̃ critic (E(x) vs z)", "x̂ critic (D(E(x)) vs x)"]
    shipped = next(p for p in state.param.run_path.objects if p and p.endswith("otus-ttbar"))
    state.run_path = shipped  # the menu's watcher: an OTUS history has no critics
    assert not train.gan_box.visible
