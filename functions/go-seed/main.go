// The seed's `date` and `weather` functions, as the article writes them: two net/http handlers
// on an http.ServeMux. Built with GOOS=wasip1 GOARCH=wasm, the program is a WASI command module,
// and net/http/cgi's cgi.Serve turns the request Wisp hands over (WAGI: CGI variables and stdin)
// into an *http.Request and the handler's answer into CGI output on stdout.
//
// The handlers are the article's. What is not: getWeatherData, which the article calls without
// showing, and which would ask a weather service; a Wisp function has no sockets, so it answers
// the same fixed data as the Rust example (functions/weather/). And main, which the article
// does not show either: it serves the mux with cgi.Serve instead of http.ListenAndServe, under
// ROUTE_PREFIX when the function is mounted below one (functions/wisp.json: /go/...).
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cgi"
	"os"
	"time"
)

// Weather is one city's weather, with the fields of the Rust example's JSON.
type Weather struct {
	City         string  `json:"city"`
	TemperatureC float64 `json:"temperature_c"`
	Condition    string  `json:"condition"`
	Humidity     int     `json:"humidity"`
	WindKph      int     `json:"wind_kph"`
}

// getWeatherData answers fixed data: the sandbox has no network to ask a weather service.
func getWeatherData() []Weather {
	return []Weather{
		{City: "Seattle", TemperatureC: 12.5, Condition: "Cloudy", Humidity: 81, WindKph: 14},
		{City: "Lisbon", TemperatureC: 21.5, Condition: "Sunny", Humidity: 58, WindKph: 18},
		{City: "Tokyo", TemperatureC: 17.5, Condition: "Rain", Humidity: 88, WindKph: 9},
		{City: "Nairobi", TemperatureC: 24.5, Condition: "Clear", Humidity: 45, WindKph: 11},
	}
}

func main() {
	mux := http.NewServeMux()

	// The 'date' function that returns the current date
	mux.HandleFunc("/api/date", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Methods", "GET")

		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}

		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(fmt.Sprintf(`{ "now": %d }`, time.Now().UnixNano()/1000000)))
	})

	// The 'weather' function that returns the weather
	mux.HandleFunc("/api/weather", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Methods", "GET")

		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}

		weather := getWeatherData()

		// Convert the weather data to JSON.
		responseJSON, err := json.Marshal(weather)
		if err != nil {
			http.Error(w, "Error encoding response to JSON", http.StatusInternalServerError)
			return
		}

		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(responseJSON)
	})

	var handler http.Handler = mux
	if prefix := os.Getenv("ROUTE_PREFIX"); prefix != "" {
		handler = http.StripPrefix(prefix, mux)
	}
	if err := cgi.Serve(handler); err != nil {
		fmt.Fprintln(os.Stderr, "go-seed:", err)
		os.Exit(1)
	}
}
