"""The workflow designer in a real browser: an admin adds an approval step to contract
approval and the simulation shows the new path before anything is published."""
from __future__ import annotations

import re

import pytest

from .harness import BROWSER_MISSING, screenshot

if BROWSER_MISSING:
    pytest.skip(BROWSER_MISSING, allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

from metacrm.designer import drafts  # noqa: E402

pytestmark = pytest.mark.browser


def test_admin_adds_a_step_from_300000_and_the_simulation_shows_it(crm, page_as):
    page = page_as("admin")
    page.goto("/designer/workflows/contract_approval")
    expect(page.locator("svg.mc-wf-graph .mc-wf-state[data-state=draft]")).to_be_visible()

    # Clicking a transition in the graph opens its properties below it.
    page.locator("svg.mc-wf-graph .mc-wf-edge[data-transition=submit]").first.click()
    expect(page.locator("[data-panel='transition:submit']")).to_be_visible()
    expect(page.locator("[data-panel='state:draft']")).to_be_hidden()

    chain = page.locator(".ed-chain[data-chain=contract_steps]")
    expect(chain.locator(".ed-step")).to_have_count(3)
    chain.locator(".ed-add-step").click()
    step = chain.locator(".ed-step").nth(3)
    expect(chain.locator(".ed-step")).to_have_count(4)
    step.locator("input[data-path$='/name']").fill("director")
    step.locator("input[data-path$='/label/en']").fill("Sales director")
    step.locator("input[data-path$='/label/zh']").fill("销售总监审批")
    step.locator("input[data-path$='/when']").fill("amount >= 300000")
    step.locator("select[data-path$='/approvers/0/role']").select_option("sales_manager")

    sim = page.locator("#ed-sim")
    sim.locator("#ed-sim-user").select_option("rep_north")
    sim.locator("#ed-sim-amount").fill("400000")
    sim.locator("#ed-sim-run").click()
    director = sim.locator(".ed-sim-step[data-step=director]")
    expect(director).to_have_attribute("data-status", "will_run")
    expect(director).to_contain_text("Morgan Manager")
    # Finance (the harness's `fin`) reviews from 100,000.
    finance = sim.locator(".ed-sim-step[data-step=finance]")
    expect(finance).to_have_attribute("data-status", "will_run")
    expect(finance).to_contain_text("Fay Finance")
    expect(sim.locator(".ed-sim-step[data-step=general_manager]")).to_have_attribute("data-status", "skipped")

    # Below 300,000 the new step is skipped.
    sim.locator("#ed-sim-amount").fill("200000")
    sim.locator("#ed-sim-run").click()
    expect(sim.locator(".ed-sim-step[data-step=director]")).to_have_attribute("data-status", "skipped")

    page.locator("#ed-save").click()
    expect(page.locator("#ed-status")).to_have_text("Saved to the draft.")
    expect(page.locator("#dz-draft-count")).to_have_text(re.compile(r"[1-9]\d* changes"))
    screenshot(page, "designer-workflow")
    with crm.engine.connect() as conn:
        doc = drafts.get_document(conn, "workflow", "contract_approval")
    steps = doc["approvals"]["contract_steps"]["steps"]
    assert steps[-1]["name"] == "director" and steps[-1]["when"] == "amount >= 300000"
    assert steps[-1]["approvers"] == [{"type": "role", "role": "sales_manager"}]


def test_a_broken_transition_shows_its_error_beside_the_input(crm, page_as):
    page = page_as("admin")
    page.goto("/designer/workflows/contract_approval?select=transition:withdraw")
    panel = page.locator("[data-panel='transition:withdraw']")
    expect(panel).to_be_visible()
    panel.locator("input[data-path$='/when']").fill("amount >>> 1")
    page.locator("#ed-save").click()
    note = panel.locator(".ed-err")
    expect(note).to_be_visible()
    expect(panel.locator("input[data-path$='/when']")).to_have_class("form-control form-control-sm font-monospace mb-2 is-invalid")
    expect(page.locator("#ed-status")).to_contain_text("nothing was saved")
