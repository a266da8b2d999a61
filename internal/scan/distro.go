package scan

import (
	"slices"
	"strconv"
	"strings"

	"github.com/google/osv-scalibr/extractor"
	rpmmeta "github.com/google/osv-scalibr/extractor/filesystem/os/rpm/metadata"
)

// osEcosystem names the ecosystem a distribution release's packages match
// in, from its os-release, spelled as the release's feed spells it:
//
//   - Debian "Debian:12"; Ubuntu "Ubuntu:22.04:LTS" (Canonical's OSV records
//     mark long-term releases) or "Ubuntu:24.10"; Alpine "Alpine:v3.20";
//     Wolfi and Chainguard "Wolfi", "Chainguard" (rolling).
//   - Red Hat Enterprise Linux and CentOS "Red Hat:9" (CentOS is matched on
//     Red Hat's data, as Red Hat publishes none for CentOS and its packages
//     are RHEL's rebuilt); Rocky Linux "Rocky Linux:9" and AlmaLinux
//     "AlmaLinux:9" as their OSV errata name them; Amazon Linux
//     "Amazon Linux:2" and "Amazon Linux:2023".
//   - SUSE Linux Enterprise as SUSE names the product, from the os-release
//     ID and VERSION_ID (the PRETTY_NAME is free text): "SUSE:Linux
//     Enterprise Server 15 SP5" (BCI images are ID "sles" too), "...Desktop
//     15 SP5", "...Server for SAP Applications 15 SP5", "...High Performance
//     Computing 15 SP5", "SUSE:Linux Enterprise Micro 5.5", "SUSE:Linux Micro
//     6.0", "SUSE:Linux Enterprise Server 16.0". SUSE files most packages
//     under the modules a product is built from, not under the product:
//     vulndb reads every product of the service pack (its distro.go).
//   - openSUSE Leap "openSUSE:Leap 15.5".
//   - Oracle Linux "Oracle Linux:8"; its packages match in the release's
//     architecture ecosystem, "Oracle Linux:8:x86_64" (oracleArch).
//   - Bottlerocket "Bottlerocket" (one rolling line, as its advisories are).
//
// An empty result means scangate has no feed for the release (openSUSE
// Tumbleweed among them, for now).
func osEcosystem(o *OS) string {
	major, _, _ := strings.Cut(o.VersionID, ".")
	switch o.ID {
	case "debian":
		if o.VersionID != "" {
			return "Debian:" + o.VersionID
		}
	case "ubuntu":
		if o.VersionID != "" {
			if ubuntuLTS(o) {
				return "Ubuntu:" + o.VersionID + ":LTS"
			}
			return "Ubuntu:" + o.VersionID
		}
	case "alpine":
		parts := strings.Split(o.VersionID, ".")
		if len(parts) >= 2 {
			return "Alpine:v" + parts[0] + "." + parts[1]
		}
	case "wolfi":
		return "Wolfi"
	case "chainguard":
		return "Chainguard"
	case "rhel", "centos":
		if major != "" {
			return "Red Hat:" + major
		}
	case "rocky":
		if major != "" {
			return "Rocky Linux:" + major
		}
	case "almalinux":
		if major != "" {
			return "AlmaLinux:" + major
		}
	case "amzn":
		if major != "" {
			return "Amazon Linux:" + major
		}
	case "ol":
		if major != "" {
			return "Oracle Linux:" + major
		}
	case "bottlerocket":
		return "Bottlerocket"
	case "sles", "sled", "sles_sap", "sle_hpc", "sle-micro", "sl-micro":
		return sleEcosystem(o)
	case "opensuse-leap":
		if o.VersionID != "" {
			return "openSUSE:Leap " + o.VersionID
		}
	}
	return ""
}

// sleProducts are SUSE's product names by os-release ID.
var sleProducts = map[string]string{
	"sles": "Linux Enterprise Server", "sled": "Linux Enterprise Desktop",
	"sles_sap": "Linux Enterprise Server for SAP Applications", "sle_hpc": "Linux Enterprise High Performance Computing",
	"sle-micro": "Linux Enterprise Micro", "sl-micro": "Linux Micro",
}

// sleEcosystem names a SUSE product release as SUSE does: up to SLE 15 a
// service pack is the minor version ("15.5" is "15 SP5", "15" and "15.0"
// the first release); SLE 16 and the Micro products name the version as it
// is ("16.0", "5.5").
func sleEcosystem(o *OS) string {
	major, minor, dotted := strings.Cut(o.VersionID, ".")
	n, err := strconv.Atoi(major)
	if err != nil || n <= 0 {
		return ""
	}
	release := o.VersionID
	if o.ID != "sle-micro" && o.ID != "sl-micro" && n < 16 {
		release = major
		if dotted && minor != "0" {
			release += " SP" + minor
		}
	}
	return "SUSE:" + sleProducts[o.ID] + " " + release
}

// ubuntuLTS reports whether an Ubuntu release is a long-term one: its
// os-release says so ("Ubuntu 22.04.3 LTS"), or, for an os-release cut
// down to ID and VERSION_ID, it is an April release of an even year.
func ubuntuLTS(o *OS) bool {
	if strings.Contains(o.PrettyName, "LTS") {
		return true
	}
	yy, mm, ok := strings.Cut(o.VersionID, ".")
	n, err := strconv.Atoi(yy)
	return o.PrettyName == "" && ok && err == nil && n%2 == 0 && mm == "04"
}

// rpmPackage completes an RPM package: its version gets the epoch that
// rpm compares first ("1:3.0.7-27.el9"); it matches in the release's
// ecosystem; and for Red Hat, whose VEX documents name source RPMs, it
// matches by its source RPM's name and version. The rebuilds' errata, Amazon
// Linux's updateinfo and SUSE's CVRF name binary packages, which are matched
// as they are.
func rpmPackage(pkg *Package, p *extractor.Package, o *OS) {
	m, ok := p.Metadata.(*rpmmeta.Metadata)
	if !ok || pkg.Type != "rpm" {
		return
	}
	if m.Epoch > 0 {
		pkg.Version = strconv.Itoa(m.Epoch) + ":" + pkg.Version
	}
	pkg.Ecosystem = ""
	if o != nil {
		pkg.Ecosystem = o.Ecosystem
	}
	if strings.HasPrefix(pkg.Ecosystem, "Oracle Linux:") && m.Architecture != "" {
		pkg.Ecosystem += ":" + m.Architecture // the machine's, after oracleArch
	}
	name, version, ok := sourceRPM(m.SourceRPM)
	if !ok {
		return
	}
	if m.Epoch > 0 {
		// A source RPM's file name has no epoch; its binaries share it.
		version = strconv.Itoa(m.Epoch) + ":" + version
	}
	if strings.HasPrefix(pkg.Ecosystem, "Red Hat:") {
		pkg.SourceName, pkg.SourceVersion = name, version
	}
}

// sourceRPM splits a source RPM file name, "curl-7.76.1-26.el9_3.2.src.rpm",
// into the package's name and version-release.
func sourceRPM(file string) (name, version string, ok bool) {
	base, ok := strings.CutSuffix(file, ".src.rpm")
	if !ok {
		base, ok = strings.CutSuffix(file, ".nosrc.rpm")
	}
	if !ok {
		return "", "", false
	}
	r := strings.LastIndexByte(base, '-')
	if r <= 0 {
		return "", "", false
	}
	v := strings.LastIndexByte(base[:r], '-')
	if v <= 0 {
		return "", "", false
	}
	return base[:v], base[v+1:], true
}

// ubuntuPro moves the deb packages of an Ubuntu machine with Ubuntu Pro to
// the release's Pro ecosystem ("Ubuntu:Pro:18.04:LTS"), whose queries read
// Pro's fixes as well as the standard ones (see vulndb). A machine has Pro
// when any package it installed is an ESM build ("+esm" in its version):
// those come only from Pro's archives. Without Pro, Pro's fixed versions
// are never offered, as such a machine cannot install them.
func ubuntuPro(pkgs []Package, o *OS) {
	if o == nil || !strings.HasPrefix(o.Ecosystem, "Ubuntu:") || strings.HasPrefix(o.Ecosystem, "Ubuntu:Pro:") {
		return
	}
	pro := false
	for _, p := range pkgs {
		if p.Type == "deb" && strings.Contains(p.Version, "+esm") {
			pro = true
			break
		}
	}
	if !pro {
		return
	}
	eco := "Ubuntu:Pro:" + strings.TrimPrefix(o.Ecosystem, "Ubuntu:")
	for i := range pkgs {
		if pkgs[i].Type == "deb" && pkgs[i].Ecosystem == o.Ecosystem {
			pkgs[i].Ecosystem = eco
		}
	}
	o.Ecosystem = eco
}

// suseLTSS moves the rpm packages of a SUSE Linux Enterprise machine with
// Long Term Service Pack Support to the service pack's LTSS ecosystem
// ("SUSE:Linux Enterprise Server 15 SP5-LTSS"), whose queries read the LTSS
// products' fixes as well as the general ones (see vulndb). LTSS is a
// subscription: a machine has it when it installed the LTSS product's
// release package, sles-ltss-release. Without it (BCI images, machines in
// general support) the fixes SUSE publishes only for LTSS are never offered,
// as such a machine cannot install them.
func suseLTSS(pkgs []Package, o *OS) {
	if o == nil || !strings.HasPrefix(o.Ecosystem, "SUSE:Linux Enterprise ") || strings.HasSuffix(o.Ecosystem, "-LTSS") {
		return
	}
	if !slices.ContainsFunc(pkgs, func(p Package) bool { return p.Type == "rpm" && p.Name == "sles-ltss-release" }) {
		return
	}
	eco := o.Ecosystem + "-LTSS"
	for i := range pkgs {
		if pkgs[i].Type == "rpm" && pkgs[i].Ecosystem == o.Ecosystem {
			pkgs[i].Ecosystem = eco
		}
	}
	o.Ecosystem = eco
}

// oracleArch settles the architecture an Oracle Linux machine's packages
// are matched for: Oracle files a fix under each architecture whose build
// differs ("Oracle Linux:7:aarch64"; vulndb reads the release's fixes with
// them). A package's own architecture is the machine's but for noarch and
// 32-bit multilib packages, which Oracle lists under the machine's
// architecture: those take the architecture most packages have. Where none
// is known, packages match the release's fixes alone.
func oracleArch(pkgs []Package, o *OS) {
	if o == nil || !strings.HasPrefix(o.Ecosystem, "Oracle Linux:") {
		return
	}
	prefix := o.Ecosystem + ":"
	count := map[string]int{}
	for _, p := range pkgs {
		if arch, ok := strings.CutPrefix(p.Ecosystem, prefix); ok && p.Type == "rpm" && !oracleGuestArch(arch) {
			count[arch]++
		}
	}
	machine, best := "", 0
	for arch, n := range count {
		if n > best || (n == best && arch < machine) {
			machine, best = arch, n
		}
	}
	for i := range pkgs {
		arch, ok := strings.CutPrefix(pkgs[i].Ecosystem, prefix)
		if !ok || pkgs[i].Type != "rpm" || !oracleGuestArch(arch) {
			continue
		}
		pkgs[i].Ecosystem = o.Ecosystem
		if machine != "" {
			pkgs[i].Ecosystem = prefix + machine
		}
	}
}

// oracleGuestArch reports whether a package's architecture may differ from
// its machine's.
func oracleGuestArch(arch string) bool {
	switch arch {
	case "noarch", "i386", "i486", "i586", "i686":
		return true
	}
	return false
}
