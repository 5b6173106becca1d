"""`gemma-desk plan`: the memory plan printed for a checkpoint or the 12B reference config."""

from __future__ import annotations

import argparse

from app import plan_command


def test_plan_command_prints_the_12b_numbers(capsys):
    parser = argparse.ArgumentParser()
    plan_command.add_arguments(parser)
    args = parser.parse_args(["--context", "8K", "--context", "128K", "--budget-gb", "64"])
    assert plan_command.run(args) == 0
    out = capsys.readouterr().out
    assert "11,959,730,176" in out and "4-bit weights and 128K context fit in" in out


def test_plan_command_exits_nonzero_and_proposes_when_too_big(capsys):
    parser = argparse.ArgumentParser()
    plan_command.add_arguments(parser)
    args = parser.parse_args(["--bits", "8", "--context", "256K", "--budget-gb", "16"])
    assert plan_command.run(args) == 1
    assert "Instead: 4-bit weights" in capsys.readouterr().out


def test_plan_command_reads_a_checkpoint_folder(tiny_checkpoint, capsys):
    parser = argparse.ArgumentParser()
    plan_command.add_arguments(parser)
    assert plan_command.run(parser.parse_args([str(tiny_checkpoint), "--context", "4K"])) == 0
    assert str(tiny_checkpoint) in capsys.readouterr().out


def test_plan_prints_attention_temporaries_as_their_own_line(capsys):
    parser = argparse.ArgumentParser()
    plan_command.add_arguments(parser)
    args = parser.parse_args(["--context", "256K", "--budget-gb", "64", "--backend", "metal"])
    assert plan_command.run(args) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "attention:" in x)
    assert "metal" in line and "head dim 512: key blocks of" in line
    assert "head dim 256: MLX unfused" in line


def test_plan_counts_the_drafter_found_beside_the_checkpoint(
    tiny_checkpoint_with_assistant, capsys
):
    parser = argparse.ArgumentParser()
    plan_command.add_arguments(parser)
    folder = str(tiny_checkpoint_with_assistant)
    assert plan_command.run(parser.parse_args([folder, "--context", "4K", "--bits", "16"])) == 0
    with_drafter = capsys.readouterr().out
    assert "with the drafter" in with_drafter and "drafter:" in with_drafter
    args = parser.parse_args([folder, "--context", "4K", "--bits", "16", "--no-draft"])
    assert plan_command.run(args) == 0
    assert "drafter" not in capsys.readouterr().out
