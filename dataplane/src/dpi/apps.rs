//! Applications: hostname suffix rules that name the service behind a
//! flow, and its category.
//!
//! A rule's suffix matches a hostname equal to it or ending in
//! `.suffix`. Config rules are looked at first (so the config can override
//! a built-in, even one with a longer suffix); within each set the longest
//! matching suffix wins. Matching is case-insensitive (the engine
//! lowercases hostnames) and allocation-free: each candidate suffix of the
//! hostname is looked up in a hash map.

use super::engine::{AppRuleConfig, DpiError};
use super::types::{AppId, Category};
use std::collections::HashMap;

/// A built-in application and the domains it serves from.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinApp {
    pub name: &'static str,
    pub category: Category,
    pub suffixes: &'static [&'static str],
}

const fn app(
    name: &'static str,
    category: Category,
    suffixes: &'static [&'static str],
) -> BuiltinApp {
    BuiltinApp {
        name,
        category,
        suffixes,
    }
}

use Category::{FileTransfer, Gaming, Video, VoIP, Web};

/// The built-in table. Music streaming (Spotify, SoundCloud) is Video:
/// for QoS it is the same kind of long-lived, rate-adaptive stream.
#[rustfmt::skip]
pub const BUILTIN: &[BuiltinApp] = &[
    app("YouTube", Video, &["youtube.com", "googlevideo.com", "ytimg.com", "youtu.be", "youtube-nocookie.com", "youtubei.googleapis.com"]),
    app("Netflix", Video, &["netflix.com", "netflix.net", "nflxvideo.net", "nflximg.net", "nflximg.com", "nflxext.com", "nflxso.net"]),
    app("Zoom", VoIP, &["zoom.us", "zoom.com", "zoomgov.com"]),
    app("Microsoft Teams", VoIP, &["teams.microsoft.com", "teams.live.com", "teams.cdn.office.net", "lync.com"]),
    app("WhatsApp", VoIP, &["whatsapp.com", "whatsapp.net", "wa.me"]),
    app("Spotify", Video, &["spotify.com", "scdn.co", "spotifycdn.com", "spotifycdn.net"]),
    app("Google", Web, &["google.com", "googleapis.com", "gstatic.com", "googleusercontent.com", "gvt1.com", "gvt2.com", "ggpht.com", "1e100.net", "googlesyndication.com", "doubleclick.net", "googleadservices.com", "google-analytics.com", "googletagmanager.com"]),
    app("Gmail", Web, &["mail.google.com", "gmail.com", "inbox.google.com"]),
    app("Google Drive", FileTransfer, &["drive.google.com", "drive.usercontent.google.com", "googledrive.com"]),
    app("Google Meet", VoIP, &["meet.google.com"]),
    app("Facebook", Web, &["facebook.com", "facebook.net", "fbcdn.net", "fb.com", "fbsbx.com", "messenger.com"]),
    app("Instagram", Web, &["instagram.com", "cdninstagram.com"]),
    app("Amazon", Web, &["amazon.com", "amazon.co.uk", "amazon.de", "amazon.fr", "amazon.co.jp", "media-amazon.com", "ssl-images-amazon.com"]),
    app("Amazon AWS", Web, &["amazonaws.com", "aws.amazon.com", "awsstatic.com", "cloudfront.net"]),
    app("Prime Video", Video, &["primevideo.com", "aiv-cdn.net", "aiv-delivery.net", "amazonvideo.com", "pv-cdn.net"]),
    app("Cloudflare", Web, &["cloudflare.com", "cloudflare-dns.com", "one.one.one.one", "cloudflareinsights.com", "cloudflare.net"]),
    app("Apple", Web, &["apple.com", "mzstatic.com", "cdn-apple.com", "aaplimg.com", "apple-cloudkit.com", "apple.news"]),
    app("iCloud", FileTransfer, &["icloud.com", "icloud-content.com", "me.com"]),
    app("GitHub", Web, &["github.com", "githubusercontent.com", "github.io", "githubassets.com"]),
    app("Slack", Web, &["slack.com", "slack-edge.com", "slack-msgs.com", "slack-imgs.com"]),
    app("Discord", VoIP, &["discord.com", "discord.gg", "discordapp.com", "discordapp.net", "discord.media"]),
    app("Twitch", Video, &["twitch.tv", "ttvnw.net", "jtvnw.net", "twitchcdn.net", "twitchsvc.net"]),
    app("TikTok", Video, &["tiktok.com", "tiktokcdn.com", "tiktokv.com", "tiktokcdn-us.com", "byteoversea.com", "ibytedtos.com", "musical.ly"]),
    app("Twitter", Web, &["twitter.com", "twimg.com", "x.com", "t.co"]),
    app("LinkedIn", Web, &["linkedin.com", "licdn.com"]),
    app("Reddit", Web, &["reddit.com", "redd.it", "redditmedia.com", "redditstatic.com"]),
    app("Wikipedia", Web, &["wikipedia.org", "wikimedia.org", "wiktionary.org", "wikidata.org"]),
    app("Dropbox", FileTransfer, &["dropbox.com", "dropboxapi.com", "dropboxusercontent.com", "db.tt"]),
    app("OneDrive", FileTransfer, &["onedrive.com", "onedrive.live.com", "1drv.com", "1drv.ms", "storage.live.com"]),
    app("Office365", Web, &["office.com", "office365.com", "office.net", "microsoftonline.com", "sharepoint.com", "officeapps.live.com"]),
    app("Outlook", Web, &["outlook.com", "outlook.office365.com", "outlook.live.com", "hotmail.com"]),
    app("Microsoft", Web, &["microsoft.com", "msn.com", "live.com", "windowsupdate.com", "msftconnecttest.com", "azureedge.net", "azure.com", "windows.net"]),
    app("Skype", VoIP, &["skype.com", "skypeassets.com", "skype.net"]),
    app("Webex", VoIP, &["webex.com", "wbx2.com", "ciscospark.com"]),
    app("Steam", Gaming, &["steampowered.com", "steamcommunity.com", "steamstatic.com", "steamcontent.com", "steamserver.net", "valvesoftware.com"]),
    app("Epic Games", Gaming, &["epicgames.com", "epicgames.dev", "unrealengine.com", "fortnite.com"]),
    app("Xbox Live", Gaming, &["xboxlive.com", "xbox.com", "xboxab.com"]),
    app("PlayStation Network", Gaming, &["playstation.com", "playstation.net", "sonyentertainmentnetwork.com"]),
    app("Riot Games", Gaming, &["riotgames.com", "leagueoflegends.com", "riotcdn.net", "playvalorant.com"]),
    app("Blizzard", Gaming, &["blizzard.com", "battle.net", "blzstatic.cn"]),
    app("Roblox", Gaming, &["roblox.com", "rbxcdn.com", "rbx.com"]),
    app("Minecraft", Gaming, &["minecraft.net", "mojang.com", "minecraftservices.com"]),
    app("Electronic Arts", Gaming, &["ea.com", "origin.com"]),
    app("Quake", Gaming, &["quakelive.com"]),
    app("Disney+", Video, &["disneyplus.com", "disney-plus.net", "dssott.com", "bamgrid.com"]),
    app("Hulu", Video, &["hulu.com", "hulustream.com", "huluim.com"]),
    app("Vimeo", Video, &["vimeo.com", "vimeocdn.com"]),
    app("SoundCloud", Video, &["soundcloud.com", "sndcdn.com"]),
    app("Akamai", Web, &["akamai.net", "akamaihd.net", "akamaized.net", "akamaiedge.net", "edgekey.net", "edgesuite.net", "akamai.com"]),
    app("Fastly", Web, &["fastly.net", "fastly.com", "fastlylb.net"]),
    app("WeChat", VoIP, &["wechat.com", "weixin.qq.com", "wx.qq.com"]),
    app("Telegram", VoIP, &["telegram.org", "t.me", "telegram.me", "tdesktop.com", "telesco.pe"]),
    app("Signal", VoIP, &["signal.org", "whispersystems.org", "signal.art"]),
    app("Yahoo", Web, &["yahoo.com", "yimg.com", "yahooapis.com"]),
    app("Bing", Web, &["bing.com", "bing.net"]),
    app("DuckDuckGo", Web, &["duckduckgo.com"]),
    app("Pinterest", Web, &["pinterest.com", "pinimg.com"]),
    app("Snapchat", Web, &["snapchat.com", "snap.com", "sc-cdn.net", "snapkit.com"]),
    app("Baidu", Web, &["baidu.com", "bdstatic.com"]),
    app("Yandex", Web, &["yandex.ru", "yandex.net", "yandex.com"]),
    app("eBay", Web, &["ebay.com", "ebaystatic.com"]),
    app("PayPal", Web, &["paypal.com", "paypalobjects.com"]),
    app("Adobe", Web, &["adobe.com", "adobe.io", "typekit.net"]),
    app("Mozilla", Web, &["mozilla.org", "mozilla.com", "mozilla.net", "firefox.com"]),
    app("Ubuntu", FileTransfer, &["ubuntu.com", "canonical.com", "launchpad.net", "snapcraft.io"]),
    app("Debian", FileTransfer, &["debian.org", "debian.net"]),
    app("Fedora", FileTransfer, &["fedoraproject.org"]),
    app("Docker Hub", FileTransfer, &["docker.io", "docker.com"]),
    app("PyPI", FileTransfer, &["pypi.org", "pythonhosted.org"]),
    app("Box", FileTransfer, &["box.com", "boxcdn.net"]),
    app("WeTransfer", FileTransfer, &["wetransfer.com"]),
];

/// The longest suffix a rule may have (a DNS name's limit).
const MAX_SUFFIX: usize = 253;
const MAX_APP_NAME: usize = 64;

/// The engine's application table: names and categories by [`AppId`], and
/// the suffix rules.
#[derive(Debug, Clone)]
pub struct AppTable {
    /// Index = `AppId.0`; entry 0 stands for [`AppId::NONE`].
    apps: Vec<(Box<str>, Category)>,
    builtin: HashMap<Box<str>, AppId>,
    config: HashMap<Box<str>, AppId>,
}

impl AppTable {
    /// The built-ins plus `rules`, which are validated: an error names the
    /// first bad rule by its index in the list.
    pub fn new(rules: &[AppRuleConfig]) -> Result<AppTable, DpiError> {
        let mut t = AppTable {
            apps: vec![("".into(), Category::Unknown)],
            builtin: HashMap::new(),
            config: HashMap::new(),
        };
        for b in BUILTIN {
            let id = t.intern(b.name, b.category);
            for s in b.suffixes {
                t.builtin.insert((*s).into(), id);
            }
        }
        for (index, rule) in rules.iter().enumerate() {
            let bad = |reason: String| DpiError::BadRule { index, reason };
            let suffix = validate_suffix(&rule.suffix)
                .map_err(|r| bad(format!("suffix {:?}: {r}", rule.suffix)))?;
            let name = rule.app.trim();
            if name.is_empty() || name.len() > MAX_APP_NAME || name.chars().any(char::is_control) {
                return Err(bad(format!(
                    "app name {:?} must be 1 to {MAX_APP_NAME} printable characters",
                    rule.app
                )));
            }
            let category =
                super::types::Category::parse(rule.category.trim()).ok_or_else(|| {
                    let names: Vec<&str> = Category::ALL.iter().map(|c| c.name()).collect();
                    bad(format!(
                        "unknown category {:?} (expected one of {})",
                        rule.category,
                        names.join(", ")
                    ))
                })?;
            if t.config.contains_key(suffix.as_str()) {
                return Err(bad(format!(
                    "suffix {:?} is already used by an earlier rule",
                    rule.suffix
                )));
            }
            if t.apps.len() > usize::from(u16::MAX) {
                return Err(bad("too many applications".into()));
            }
            let id = t.intern(name, category);
            t.config.insert(suffix.into_boxed_str(), id);
        }
        Ok(t)
    }

    fn intern(&mut self, name: &str, category: Category) -> AppId {
        if let Some(i) = self
            .apps
            .iter()
            .position(|(n, c)| &**n == name && *c == category)
        {
            return AppId(i as u16);
        }
        self.apps.push((name.into(), category));
        AppId((self.apps.len() - 1) as u16)
    }

    /// The application of a lowercase hostname, or [`AppId::NONE`].
    pub fn lookup(&self, host: &str) -> AppId {
        Self::longest(&self.config, host)
            .or_else(|| Self::longest(&self.builtin, host))
            .unwrap_or(AppId::NONE)
    }

    fn longest(map: &HashMap<Box<str>, AppId>, host: &str) -> Option<AppId> {
        if map.is_empty() {
            return None;
        }
        let host = host.strip_suffix('.').unwrap_or(host);
        let mut rest = host;
        loop {
            if let Some(id) = map.get(rest) {
                return Some(*id);
            }
            rest = rest.split_once('.')?.1;
        }
    }

    /// The id of a built-in or configured application by name.
    pub fn by_name(&self, name: &str) -> Option<AppId> {
        self.apps
            .iter()
            .skip(1)
            .position(|(n, _)| &**n == name)
            .map(|i| AppId(i as u16 + 1))
    }

    pub fn name(&self, id: AppId) -> Option<&str> {
        if id.is_none() {
            return None;
        }
        self.apps.get(usize::from(id.0)).map(|(n, _)| &**n)
    }

    pub fn category(&self, id: AppId) -> Option<Category> {
        if id.is_none() {
            return None;
        }
        self.apps.get(usize::from(id.0)).map(|(_, c)| *c)
    }

    /// Applications known (built-in and configured), excluding NONE.
    pub fn len(&self) -> usize {
        self.apps.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A suffix as a lowercase DNS name, or why it is not one.
fn validate_suffix(s: &str) -> Result<String, String> {
    let s = s.trim().to_ascii_lowercase();
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.len() > MAX_SUFFIX {
        return Err(format!("is longer than {MAX_SUFFIX} characters"));
    }
    if s.starts_with('.') || s.ends_with('.') {
        return Err("must not start or end with '.' (write \"example.com\", which also matches its subdomains)".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "contains {c:?}; only letters, digits, '-', '_' and '.' are allowed"
        ));
    }
    if s.split('.').any(|l| l.is_empty() || l.len() > 63) {
        return Err("has an empty label or one longer than 63 characters".into());
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(suffix: &str, app: &str, category: &str) -> AppRuleConfig {
        AppRuleConfig {
            suffix: suffix.into(),
            app: app.into(),
            category: category.into(),
        }
    }

    #[test]
    fn builtin_table_covers_at_least_fifty_services() {
        let t = AppTable::new(&[]).unwrap();
        assert!(t.len() >= 50, "{} apps", t.len());
        // Every suffix is a valid rule and unique across apps.
        let mut seen = std::collections::HashSet::new();
        for b in BUILTIN {
            for s in b.suffixes {
                assert_eq!(validate_suffix(s).as_deref(), Ok(*s));
                assert!(seen.insert(*s), "duplicate suffix {s}");
            }
        }
    }

    #[test]
    fn hostnames_match_suffixes_at_label_boundaries() {
        let t = AppTable::new(&[]).unwrap();
        let name = |h: &str| t.name(t.lookup(h)).map(str::to_owned);
        assert_eq!(
            name("rr3---sn-4g5e6nsz.googlevideo.com").as_deref(),
            Some("YouTube")
        );
        assert_eq!(name("youtube.com").as_deref(), Some("YouTube"));
        assert_eq!(name("notyoutube.com"), None);
        assert_eq!(name("occ-0-1.1.nflxso.net").as_deref(), Some("Netflix"));
        assert_eq!(name("example.org"), None);
        assert_eq!(name("www.google.com.").as_deref(), Some("Google"));
        assert_eq!(t.category(t.lookup("zoom.us")), Some(Category::VoIP));
        assert_eq!(
            t.category(t.lookup("archive.ubuntu.com")),
            Some(Category::FileTransfer)
        );
    }

    #[test]
    fn longest_suffix_wins() {
        let t = AppTable::new(&[]).unwrap();
        assert_eq!(t.name(t.lookup("mail.google.com")), Some("Gmail"));
        assert_eq!(t.name(t.lookup("www.google.com")), Some("Google"));
        assert_eq!(
            t.name(t.lookup("teams.microsoft.com")),
            Some("Microsoft Teams")
        );
        assert_eq!(t.name(t.lookup("login.microsoft.com")), Some("Microsoft"));
    }

    #[test]
    fn config_rules_take_precedence() {
        let t = AppTable::new(&[
            rule("corp.example", "Intranet", "web"),
            rule("google.com", "Search", "Web"),
            rule("git.corp.example", "Forge", "FileTransfer"),
        ])
        .unwrap();
        assert_eq!(t.name(t.lookup("wiki.corp.example")), Some("Intranet"));
        assert_eq!(t.name(t.lookup("git.corp.example")), Some("Forge"));
        // A config rule beats even a longer built-in suffix.
        assert_eq!(t.name(t.lookup("mail.google.com")), Some("Search"));
        assert_eq!(
            t.category(t.lookup("git.corp.example")),
            Some(Category::FileTransfer)
        );
    }

    #[test]
    fn bad_rules_are_named_in_the_error() {
        let err = |rules: &[AppRuleConfig]| AppTable::new(rules).unwrap_err().to_string();
        let ok = rule("a.example", "A", "Web");
        assert!(err(&[ok.clone(), rule("", "X", "Web")]).starts_with("dpi rule 1: suffix \"\""));
        assert!(err(&[rule(".x.com", "X", "Web")]).contains("must not start or end"));
        assert!(err(&[rule("x y.com", "X", "Web")]).contains("' '"));
        assert!(err(&[rule("x.com", "", "Web")]).contains("app name"));
        assert!(err(&[rule("x.com", "X", "Streaming")]).contains("unknown category \"Streaming\""));
        assert!(err(&[ok.clone(), ok.clone()])
            .contains("dpi rule 1: suffix \"a.example\" is already used"));
        assert!(err(&[rule(&"a.".repeat(130), "X", "Web")]).contains("longer than"));
    }

    #[test]
    fn names_and_categories_by_id() {
        let t = AppTable::new(&[rule("x.example", "YouTube", "Video")]).unwrap();
        // Same name and category: the built-in entry is reused.
        assert_eq!(t.lookup("x.example"), t.by_name("YouTube").unwrap());
        assert_eq!(t.name(AppId::NONE), None);
        assert_eq!(t.name(AppId(60_000)), None);
        assert_eq!(t.category(AppId(60_000)), None);
    }
}
