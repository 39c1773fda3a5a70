// Command vcsim starts govmomi's vCenter simulator for the vsphere tests.
//
// It serves the vim25 SOAP API over TLS with its own freshly generated CA
// and an ECDSA P-256 server certificate (SAN 127.0.0.1 and localhost, not a
// CA), because the simulator's built-in certificate is RSA-1024 and marked
// as a CA, which rustls refuses as a server certificate. The CA is written
// as PEM to -ca-out, the virtual machines (moref, name, inventory path,
// BIOS uuid, power state) as JSON to -info-out, and the SDK URL is printed
// on stdout as one line. It serves until killed or until stdin closes.
//
// GET /medic-test/guest?name=VM answers what the simulator's guest of that
// VM reports (host name and IP address set by a guest customization, the
// customization still pending), which no vim25 call medic makes shows.
// -miscount-cards VM makes the guest customization of that VM's clones
// fail (its summary counts one network card too many), to test clean-up;
// -template VM turns a VM into a template (off, no resource pool).
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

type vmInfo struct {
	Moref      string `json:"moref"`
	Name       string `json:"name"`
	Path       string `json:"path"`
	UUID       string `json:"uuid"`
	PowerState string `json:"power_state"`
}

func main() {
	user := flag.String("user", "medic", "user name the simulator accepts")
	password := flag.String("password", "secret", "password the simulator accepts")
	caOut := flag.String("ca-out", "", "where to write the CA certificate (PEM)")
	infoOut := flag.String("info-out", "", "where to write the VM list (JSON)")
	powerOff := flag.String("power-off", "", "comma-separated VM names to power off before serving")
	miscount := flag.String("miscount-cards", "", "a VM whose summary claims one network card more than it has, so a customization of its clone fails")
	template := flag.String("template", "", "a VM to power off and mark as a template, as MarkAsTemplate does")
	flag.Parse()

	if *caOut == "" || *infoOut == "" {
		log.Fatal("-ca-out and -info-out are required")
	}

	model := simulator.VPX()
	if err := model.Create(); err != nil {
		log.Fatalf("create model: %v", err)
	}
	defer model.Remove()

	caPEM, serverCert, err := makeCerts()
	if err != nil {
		log.Fatalf("certificates: %v", err)
	}
	if err := ioutil.WriteFile(*caOut, caPEM, 0o644); err != nil {
		log.Fatalf("write CA: %v", err)
	}

	for _, name := range strings.Split(*powerOff, ",") {
		if name == "" {
			continue
		}
		if err := powerOffByName(name); err != nil {
			log.Fatalf("power off %s: %v", name, err)
		}
	}

	if *template != "" {
		vm := vmByName(*template)
		if vm == nil {
			log.Fatalf("template: no VM named %q", *template)
		}
		if err := powerOffByName(*template); err != nil {
			log.Fatalf("template: %v", err)
		}
		vm.Config.Template = true
		vm.Summary.Config.Template = true
		vm.ResourcePool = nil
	}

	if *miscount != "" {
		vm := vmByName(*miscount)
		if vm == nil {
			log.Fatalf("miscount cards: no VM named %q", *miscount)
		}
		vm.Summary.Config.NumEthernetCards++
	}

	if err := writeInfo(*infoOut); err != nil {
		log.Fatalf("write info: %v", err)
	}

	model.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword(*user, *password)}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}}
	server := model.Service.NewServer()
	defer server.Close()
	model.Service.ServeMux.HandleFunc("/medic-test/guest", serveGuest)

	shown := *server.URL
	shown.User = nil
	fmt.Println(shown.String())

	// Serve until stdin closes (the test process went away) or we are killed.
	_, _ = io.Copy(ioutil.Discard, os.Stdin)
}

// makeCerts returns a fresh CA as PEM and a server certificate signed by it.
func makeCerts() ([]byte, tls.Certificate, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vcsim test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, tls.Certificate{}, err
	}

	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	serverTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	serverDER, err := x509.CreateCertificate(rand.Reader, serverTemplate, caCert, &serverKey.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}

	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return caPEM, tls.Certificate{
		Certificate: [][]byte{serverDER, caDER},
		PrivateKey:  serverKey,
	}, nil
}

// vmByName is the simulator's VM of that name, or nil.
func vmByName(name string) *simulator.VirtualMachine {
	for _, e := range simulator.Map.All("VirtualMachine") {
		if vm, ok := e.(*simulator.VirtualMachine); ok && vm.Name == name {
			return vm
		}
	}
	return nil
}

// powerOffByName marks a VM powered off before the server starts, so no
// request can race with it.
func powerOffByName(name string) error {
	vm := vmByName(name)
	if vm == nil {
		return fmt.Errorf("no VM named %q", name)
	}
	vm.Runtime.PowerState = types.VirtualMachinePowerStatePoweredOff
	vm.Summary.Runtime.PowerState = types.VirtualMachinePowerStatePoweredOff
	return nil
}

type guestInfo struct {
	HostName             string `json:"host_name"`
	IPAddress            string `json:"ip_address"`
	PendingCustomization string `json:"pending_customization"`
	PowerState           string `json:"power_state"`
}

// serveGuest answers the guest of the VM named by the name parameter.
func serveGuest(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if vm := vmByName(name); vm != nil {
		var info guestInfo
		simulator.Map.WithLock(vm, func() {
			info = guestInfo{
				HostName:   vm.Guest.HostName,
				IPAddress:  vm.Guest.IpAddress,
				PowerState: string(vm.Runtime.PowerState),
			}
			if vm.Config.Tools != nil {
				info.PendingCustomization = vm.Config.Tools.PendingCustomization
			}
		})
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(info)
		return
	}
	http.Error(w, "no VM named "+name, http.StatusNotFound)
}

// inventoryPath walks the parents of an entity up to (not including) the root folder.
func inventoryPath(e mo.Entity) string {
	var parts []string
	for e != nil {
		me := e.Entity()
		if me.Parent == nil {
			break // the root folder has no name in inventory paths
		}
		parts = append([]string{me.Name}, parts...)
		parent, ok := simulator.Map.Get(*me.Parent).(mo.Entity)
		if !ok {
			break
		}
		e = parent
	}
	return "/" + strings.Join(parts, "/")
}

func writeInfo(path string) error {
	var vms []vmInfo
	for _, e := range simulator.Map.All("VirtualMachine") {
		vm, ok := e.(*simulator.VirtualMachine)
		if !ok {
			continue
		}
		vms = append(vms, vmInfo{
			Moref:      vm.Self.Value,
			Name:       vm.Name,
			Path:       inventoryPath(vm),
			UUID:       vm.Config.Uuid,
			PowerState: string(vm.Runtime.PowerState),
		})
	}
	sort.Slice(vms, func(i, j int) bool { return vms[i].Name < vms[j].Name })
	data, err := json.MarshalIndent(vms, "", "  ")
	if err != nil {
		return err
	}
	return ioutil.WriteFile(path, data, 0o644)
}
