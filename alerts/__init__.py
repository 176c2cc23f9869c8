"""Hazard rules, their pure evaluation, the alert store and lifecycle, and distribution (SSE, MQTT, webhooks, CAP)."""

from alerts.cap import CAP_MEDIA_TYPE, CapContext, atom_feed, cap_alert, cap_document, cap_polygons, level_table
from alerts.cap_messages import CapMessage
from alerts.destinations import Destination, DestinationRefused, WebhookDestinations, address_refusal
from alerts.engine import AlertEngine, EngineStats, load_rules
from alerts.evaluate import (
    Change,
    Evaluation,
    Observation,
    SubjectState,
    Transition,
    evaluate,
    evaluate_silence,
    rebuild,
    site_levels,
)
from alerts.lifecycle import act
from alerts.manage import delete_rule, rules_in_force, save_rule, subscribe_webhook
from alerts.mqtt_publish import MqttAlertPublisher, event_topic, state_topic
from alerts.outbox import delete_webhook, deliveries_of, list_webhooks
from alerts.rulefiles import (
    RuleFileError,
    RuleProblem,
    default_rules_dir,
    load_rule_dir,
    load_rule_file,
    parse_rule,
    parse_rules,
    rules_directory,
)
from alerts.ruleset import AnyRule, Hazard, lookback
from alerts.runtime import AlertServices, start_alert_services
from alerts.states import Action
from alerts.store import (
    AlertFilter,
    alert_with_events,
    cap_messages_of,
    cap_messages_of_alerts,
    get_alert,
    list_alerts,
)
from alerts.stream import StreamFilter, event_json, sse_events, start_after
from alerts.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookDispatcher, sign, verify

__all__ = [
    "CAP_MEDIA_TYPE",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Action",
    "AlertEngine",
    "AlertFilter",
    "AlertServices",
    "AnyRule",
    "CapContext",
    "CapMessage",
    "Change",
    "Destination",
    "DestinationRefused",
    "EngineStats",
    "Evaluation",
    "Hazard",
    "MqttAlertPublisher",
    "Observation",
    "RuleFileError",
    "RuleProblem",
    "StreamFilter",
    "SubjectState",
    "Transition",
    "WebhookDestinations",
    "WebhookDispatcher",
    "act",
    "address_refusal",
    "alert_with_events",
    "atom_feed",
    "cap_alert",
    "cap_document",
    "cap_messages_of",
    "cap_messages_of_alerts",
    "cap_polygons",
    "default_rules_dir",
    "delete_rule",
    "delete_webhook",
    "deliveries_of",
    "evaluate",
    "evaluate_silence",
    "event_json",
    "event_topic",
    "get_alert",
    "level_table",
    "list_alerts",
    "list_webhooks",
    "load_rule_dir",
    "load_rule_file",
    "load_rules",
    "lookback",
    "parse_rule",
    "parse_rules",
    "rebuild",
    "rules_directory",
    "rules_in_force",
    "save_rule",
    "sign",
    "site_levels",
    "sse_events",
    "start_after",
    "start_alert_services",
    "state_topic",
    "subscribe_webhook",
    "verify",
]
