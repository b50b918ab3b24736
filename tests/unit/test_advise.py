from tunewright.advise import Evidence, recommend


def ev(**kw):
    base = dict(examples_per_class_min=100, examples_per_class_median=200, num_classes=8, train_size=2000,
                probe_accuracy=0.85, shift_mmd2=0.1, shift_c2st=0.6, step_seconds_full=2.0,
                step_seconds_frozen=0.5, budget_minutes=None)
    return Evidence(**{**base, **kw})


def test_few_examples_keep_the_pretrained_features():
    rec, reasons, _, _ = recommend(ev(examples_per_class_min=3, examples_per_class_median=5, budget_minutes=0.1))
    assert rec == "feature_extraction"
    assert any("few examples" in r for r in reasons)


def test_strong_probe_near_reference_domain_needs_no_fine_tuning():
    assert recommend(ev(probe_accuracy=0.97, shift_c2st=0.2))[0] == "feature_extraction"


def test_large_shift_with_budget_gives_full_and_tight_budget_gives_lora():
    assert recommend(ev(shift_c2st=0.95, probe_accuracy=0.7))[0] == "full"
    # 3 epochs x 63 steps x 2 s = 6.3 min full; LoRA 4.7 min
    assert recommend(ev(shift_c2st=0.95, probe_accuracy=0.7, budget_minutes=5.0))[0] == "lora"
    assert recommend(ev(budget_minutes=1.0))[0] == "feature_extraction"


def test_reference_set_is_never_the_target_itself():
    from tunewright.advise import reference_for
    assert reference_for("image", "mnist") == "digits"
    assert reference_for("image", "digits") == "mnist"           # digits against digits would score 0
    assert reference_for("text", "20newsgroups") == "reuters-r8"
    assert reference_for("text", "reuters-r8") == "20newsgroups"
    assert reference_for("image", "digits", "fashion-mnist") == "fashion-mnist"
