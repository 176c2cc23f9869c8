// Japanese and English words of the map. Officials' terms follow shared/domain.md (警戒レベル, 水防団待機水位 …).

const WORDS = {
  en: {
    title: "Mimamori — Toyota City live map",
    "login.title": "Sign in",
    "login.help": "Enter your Mimamori API key. It is kept in this browser tab only and forgotten when the tab closes.",
    "login.key": "API key",
    "login.submit": "Sign in",
    "login.bad": "This key was not accepted.",
    "login.unreachable": "The hub does not answer. Try again in a moment.",
    logout: "Sign out",
    "lang.switch": "日本語",
    "sound.on": "Sound on",
    "sound.off": "Sound off",
    "live.live": "Live",
    "live.connecting": "Connecting…",
    "live.reconnecting": "Reconnecting…",
    "tab.alerts": "Alerts",
    "tab.devices": "Devices",
    "filter.state": "State",
    "filter.level": "Level",
    "filter.hazard": "Hazard",
    "filter.search": "Search",
    "state.active": "Active",
    "state.open": "Open",
    "state.acknowledged": "Acknowledged",
    "state.resolved": "Resolved",
    "state.closed": "Closed",
    "state.ended": "Ended (last {h} h)",
    "level.any": "Any level",
    "level.min": "Level {n}+",
    "level.n": "Level {n}",
    "level.none": "Normal",
    "hazard.any": "Any hazard",
    "hazard.flood": "Flood",
    "hazard.landslide": "Landslide",
    "hazard.rain": "Heavy rain",
    "hazard.sediment": "Sediment disaster",
    "hazard.equipment": "Equipment",
    "hazard.other": "Other",
    "alerts.none": "No alerts match.",
    "alerts.count": "{n}",
    "devices.count": "{n}",
    "devices.silent": "⊘ {n}",
    "banner.new": "New level {n} alert",
    "banner.active": "Level {n} alert active",
    "banner.more": "(+{n} more)",
    "banner.show": "Show",
    "banner.dismiss": "Dismiss",
    "detail.close": "Close",
    "detail.history": "History",
    "detail.note": "Note (what was done or seen)",
    "action.acknowledge": "Acknowledge",
    "action.acknowledge.done": "Acknowledged.",
    "action.resolve": "Resolve",
    "action.resolve.done": "Resolved.",
    "action.close": "Close the alert",
    "action.close.done": "Closed.",
    "action.forbidden": "Your key's role may not change alerts.",
    "detail.device": "Device",
    "detail.value": "Value",
    "detail.opened": "Opened",
    "detail.updated": "Updated",
    "detail.peak": "Peak level",
    "detail.state": "State",
    "detail.type": "Type",
    "detail.tenant": "Tenant",
    "detail.status": "Status",
    "detail.location": "Location",
    "detail.last": "Last reading",
    "detail.never": "never",
    "detail.metadata": "Site metadata",
    "detail.latest": "Latest values",
    "detail.chart": "Last {h} h",
    "detail.nodata": "No readings in this period.",
    "detail.alerts": "Active alerts",
    "detail.silent": "Silent: no reading for longer than expected",
    "event.raised": "Raised",
    "event.escalated": "Escalated",
    "event.deescalated": "Lowered",
    "event.resolved": "Resolved",
    "event.acknowledged": "Acknowledged",
    "event.closed": "Closed",
    "legend.title": "Warning levels (警戒レベル)",
    "legend.normal": "Normal",
    "legend.silent": "Silent sensor",
    "legend.stands": "Forest stands (zoom in)",
    "ago.s": "{n} s ago",
    "ago.m": "{n} min ago",
    "ago.h": "{n} h ago",
    "ago.d": "{n} d ago",
    "stand.title": "Forest stand {id}",
    "stand.species_1": "Species",
    "stand.age_1": "Age (years)",
    "stand.age_class": "Age class",
    "stand.area_ha": "Area (ha)",
    "stand.ownership": "Ownership",
    "stand.forest_type": "Forest type",
    "stand.protected": "Protection forest",
    "yes": "yes",
    "no": "no",
    "threshold.standby_m": "Standby",
    "threshold.caution_m": "Caution",
    "threshold.evacuation_m": "Evacuation judgement",
    "threshold.danger_m": "Danger",
  },
  ja: {
    title: "見守り — 豊田市 ライブマップ",
    "login.title": "ログイン",
    "login.help": "見守りの API キーを入力してください。このタブの中だけに保持され、タブを閉じると消えます。",
    "login.key": "API キー",
    "login.submit": "ログイン",
    "login.bad": "このキーは受け付けられませんでした。",
    "login.unreachable": "ハブが応答しません。しばらくしてから再度お試しください。",
    logout: "ログアウト",
    "lang.switch": "English",
    "sound.on": "音 オン",
    "sound.off": "音 オフ",
    "live.live": "ライブ",
    "live.connecting": "接続中…",
    "live.reconnecting": "再接続中…",
    "tab.alerts": "警報",
    "tab.devices": "センサー",
    "filter.state": "状態",
    "filter.level": "レベル",
    "filter.hazard": "災害種別",
    "filter.search": "検索",
    "state.active": "対応中",
    "state.open": "未確認",
    "state.acknowledged": "確認済",
    "state.resolved": "解除",
    "state.closed": "終了",
    "state.ended": "解除・終了 (過去 {h} 時間)",
    "level.any": "全レベル",
    "level.min": "レベル{n}以上",
    "level.n": "警戒レベル{n}",
    "level.none": "平常",
    "hazard.any": "全種別",
    "hazard.flood": "洪水",
    "hazard.landslide": "地すべり",
    "hazard.rain": "大雨",
    "hazard.sediment": "土砂災害",
    "hazard.equipment": "機器",
    "hazard.other": "その他",
    "alerts.none": "該当する警報はありません。",
    "alerts.count": "{n} 件",
    "devices.count": "{n} 台",
    "devices.silent": "⊘ {n}",
    "banner.new": "新しい警戒レベル{n}の警報",
    "banner.active": "警戒レベル{n}の警報が発令中",
    "banner.more": "(ほか {n} 件)",
    "banner.show": "表示",
    "banner.dismiss": "閉じる",
    "detail.close": "閉じる",
    "detail.history": "履歴",
    "detail.note": "メモ (対応内容・状況)",
    "action.acknowledge": "確認",
    "action.acknowledge.done": "確認しました。",
    "action.resolve": "解除",
    "action.resolve.done": "解除しました。",
    "action.close": "警報を終了",
    "action.close.done": "終了しました。",
    "action.forbidden": "このキーの権限では警報を変更できません。",
    "detail.device": "センサー",
    "detail.value": "値",
    "detail.opened": "発令",
    "detail.updated": "更新",
    "detail.peak": "最高レベル",
    "detail.state": "状態",
    "detail.type": "種類",
    "detail.tenant": "テナント",
    "detail.status": "稼働状態",
    "detail.location": "位置",
    "detail.last": "最終受信",
    "detail.never": "なし",
    "detail.metadata": "設置情報",
    "detail.latest": "最新値",
    "detail.chart": "過去 {h} 時間",
    "detail.nodata": "この期間の観測値はありません。",
    "detail.alerts": "対応中の警報",
    "detail.silent": "途絶: 予定の間隔を過ぎても受信がありません",
    "event.raised": "発令",
    "event.escalated": "引き上げ",
    "event.deescalated": "引き下げ",
    "event.resolved": "解除",
    "event.acknowledged": "確認",
    "event.closed": "終了",
    "legend.title": "警戒レベル",
    "legend.normal": "平常",
    "legend.silent": "途絶中のセンサー",
    "legend.stands": "森林簿の小班 (拡大で表示)",
    "ago.s": "{n} 秒前",
    "ago.m": "{n} 分前",
    "ago.h": "{n} 時間前",
    "ago.d": "{n} 日前",
    "stand.title": "小班 {id}",
    "stand.species_1": "樹種",
    "stand.age_1": "林齢",
    "stand.age_class": "齢級",
    "stand.area_ha": "面積 (ha)",
    "stand.ownership": "所有形態",
    "stand.forest_type": "林種",
    "stand.protected": "保安林",
    yes: "はい",
    no: "いいえ",
    "threshold.standby_m": "水防団待機水位",
    "threshold.caution_m": "氾濫注意水位",
    "threshold.evacuation_m": "避難判断水位",
    "threshold.danger_m": "氾濫危険水位",
  },
};

const DEVICE_TYPES = {
  river_gauge: ["River gauge", "水位計"],
  river_gauge_crisis: ["Crisis river gauge", "危機管理型水位計"],
  rain_gauge: ["Rain gauge", "雨量計"],
  extensometer: ["Extensometer", "伸縮計"],
  tiltmeter: ["Tiltmeter", "傾斜計"],
  soil_moisture: ["Soil moisture", "土壌水分計"],
  weather_station: ["Weather station", "気象観測装置"],
  dendrometer: ["Dendrometer", "樹木直径計"],
};

const METRICS = {
  water_level: ["Water level", "水位"],
  rainfall: ["Rainfall", "雨量"],
  displacement: ["Displacement", "変位"],
  tilt_x: ["Tilt X", "傾斜 X"],
  tilt_y: ["Tilt Y", "傾斜 Y"],
  soil_moisture: ["Soil moisture", "土壌水分"],
  soil_temperature: ["Soil temperature", "地温"],
  air_temperature: ["Air temperature", "気温"],
  temperature: ["Temperature", "気温"],
  humidity: ["Humidity", "湿度"],
  wind_speed: ["Wind speed", "風速"],
  wind_direction: ["Wind direction", "風向"],
  stem_radius_change: ["Stem radius change", "幹半径の変化"],
  battery: ["Battery", "電池電圧"],
  signal: ["Signal", "電波強度"],
};

let lang = "en";

export function setLanguage(value) {
  lang = value === "ja" ? "ja" : "en";
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  document.title = t("title");
}

export function language() {
  return lang;
}

export function t(key, params = {}) {
  const text = WORDS[lang][key] ?? WORDS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

export function deviceTypeName(type) {
  const names = DEVICE_TYPES[type];
  return names ? names[lang === "ja" ? 1 : 0] : type;
}

export function metricName(metric) {
  const names = METRICS[metric];
  return names ? names[lang === "ja" ? 1 : 0] : metric;
}

export function alertTitle(alert) {
  return (lang === "ja" ? alert.title_ja || alert.title_en : alert.title_en || alert.title_ja) || alert.rule_id;
}

export function placeName(props) {
  return lang === "ja" ? props.name_ja || props.name : props.name || props.name_ja;
}

const TIME = {
  en: new Intl.DateTimeFormat("en-GB", { timeZone: "Asia/Tokyo", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }),
  ja: new Intl.DateTimeFormat("ja-JP", { timeZone: "Asia/Tokyo", month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit" }),
};

// Times are shown in Japan time whatever the screen's own zone: the city's staff read them against JMA bulletins.
export function formatTime(iso) {
  return iso ? TIME[lang].format(new Date(iso)) : t("detail.never");
}

export function ago(iso, now = Date.now()) {
  if (!iso) return t("detail.never");
  const s = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (s < 90) return t("ago.s", { n: s });
  if (s < 90 * 60) return t("ago.m", { n: Math.round(s / 60) });
  if (s < 36 * 3600) return t("ago.h", { n: Math.round(s / 3600) });
  return t("ago.d", { n: Math.round(s / 86400) });
}
